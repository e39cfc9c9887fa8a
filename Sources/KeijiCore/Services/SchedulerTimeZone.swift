import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The `TIME_ZONE` the running scheduler read when it started, beside the services' pid files
/// (`scheduler.zone`, 0600: `<pid> <start time> <zone>`). The scheduler reads settings.conf once; the CLI reads it
/// at every call, and after an edit of `TIME_ZONE` `keiji task --list` showed times in a zone the scheduler did not
/// fire by, without a word. The pid and start time tie the record to one process, as a pid file's do.
public enum SchedulerTimeZone {
    public static func path(_ workspace: Workspace) -> String { workspace.pidDirectory + "/scheduler.zone" }

    /// Called by the scheduler as it starts, with the zone it fires by.
    public static func record(_ identifier: String, workspace: Workspace) throws {
        let pid = getpid()
        try FileSystem.createDirectory(workspace.pidDirectory)
        try FileSystem.writeAtomically(Data("\(pid) \(LiveProcess.startTime(of: pid) ?? 0) \(identifier)\n".utf8), to: path(workspace), mode: 0o600)
    }

    /// The zone of the scheduler that recorded it, if that process still runs; nil when none does (or it was
    /// started by a keiji that recorded none).
    public static func running(_ workspace: Workspace) -> String? {
        guard let text = try? String(contentsOfFile: path(workspace), encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count == 3, let pid = pid_t(fields[0]), pid > 1, let started = UInt64(fields[1]),
              LiveProcess.startTime(of: pid) == started else { return nil }
        return String(fields[2])
    }

    /// The warning to print when `settings` (settings.conf as it is now) names another zone than the running
    /// scheduler's; nil when they agree or no scheduler runs.
    public static func mismatchWarning(_ settings: Settings, workspace: Workspace) -> String? {
        guard let running = running(workspace), running != settings.timeZoneIdentifier else { return nil }
        return "warning: settings.conf's TIME_ZONE is \(settings.timeZoneIdentifier) but the running scheduler uses \(running) "
            + "(times here are in \(settings.timeZoneIdentifier)); restart it to apply: keiji system --restart"
    }
}
