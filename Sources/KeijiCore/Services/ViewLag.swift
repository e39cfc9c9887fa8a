import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `view.behind` beside the services' pid files (0600: `<pid> <start time> <since, ms> <reason>`) while the running
/// scheduler cannot update the query view (its disk full, say): `task --list` and `--get` show older state meanwhile,
/// and `keiji system --status` says so. The pid and start time tie it to one process, as a pid file's do: a scheduler
/// that stopped behind leaves a record no one reads. Written on a disk with room only: on a full one it may be missing.
public enum ViewLag {
    public static func path(_ workspace: Workspace) -> String { workspace.pidDirectory + "/view.behind" }

    /// Called by the scheduler when its view's updates begin failing.
    public static func record(since milliseconds: Int64, reason: String, workspace: Workspace) throws {
        let pid = getpid()
        let line = reason.split(whereSeparator: \.isNewline).joined(separator: " ")
        try FileSystem.writeAtomically(Data("\(pid) \(LiveProcess.startTime(of: pid) ?? 0) \(milliseconds) \(line)\n".utf8), to: path(workspace), mode: 0o600)
    }

    /// Called by the scheduler when its view has caught up.
    public static func clear(_ workspace: Workspace) {
        unlink(path(workspace))
    }

    /// Since when the running scheduler's view is behind, and why; nil when it is not (or no scheduler that recorded it runs).
    public static func current(_ workspace: Workspace) -> (sinceMilliseconds: Int64, reason: String)? {
        guard let text = try? String(contentsOfFile: path(workspace), encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, let pid = pid_t(fields[0]), pid > 1, let started = UInt64(fields[1]), let since = Int64(fields[2]),
              LiveProcess.startTime(of: pid) == started else { return nil }
        return (since, fields[3].trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The line `task --list`, `--get` and `system --status` print while the view is behind; nil when it is not.
    public static func warning(_ workspace: Workspace) -> String? {
        current(workspace).map { lag in
            "warning: the query view has not been updated since \(ISO8601.string(fromMilliseconds: lag.sinceMilliseconds)) (\(lag.reason)); "
                + "what it shows is older than the journal until the scheduler catches it up"
        }
    }
}
