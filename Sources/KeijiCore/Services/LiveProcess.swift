import Foundation

/// A process as `/proc` shows it. A process that has exited but is not reaped yet (a zombie: its parent, often
/// init for a daemon, has not waited for it) counts as gone: `kill(pid, 0)` still succeeds for it, and a stopped
/// scheduler looked alive to the next one that wanted its node name.
public enum LiveProcess {
    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot (with the pid, which
    /// process it is: pids are reused). Nil when it is gone or a zombie.
    public static func startTime(of pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z" else { return nil }  // fields[0] is the state (field 3)
        return UInt64(fields[19])
    }

    /// The file name of the program `pid` runs (`/proc/<pid>/exe`, which only this user's processes show), so that
    /// a process found by what it holds is known for which service it is. A program replaced on disk since it
    /// started still counts by its name.
    public static func programName(of pid: pid_t) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else { return nil }
        let path = target.hasSuffix(" (deleted)") ? String(target.dropLast(" (deleted)".count)) : target
        return (path as NSString).lastPathComponent
    }

    /// Whether `pid` is a process that has not exited.
    public static func isRunning(_ pid: pid_t) -> Bool { startTime(of: pid) != nil }
}
