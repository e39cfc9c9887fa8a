import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Finds processes a crashed scheduler left behind and kills their process groups. Every run's process
/// gets `KEIJI_RUN_ID` in its environment (children inherit it), so `/proc/<pid>/environ` says which run
/// a process belongs to, even for grandchildren that outlived the direct child's parent-death signal.
enum OrphanReaper {
    /// Kills every process (and its group) whose environment names one of `runIDs`. Returns how many.
    static func killProcesses(ofRuns runIDs: Set<String>) -> Int {
        guard !runIDs.isEmpty, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        let needles = runIDs.map { Array("KEIJI_RUN_ID=\($0)".utf8) }
        var killed = 0
        for entry in entries {
            guard let pid = pid_t(entry), pid != getpid(),
                let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ")
            else { continue }
            let variables = Array(environment).split(separator: 0)
            guard variables.contains(where: { variable in needles.contains { Array(variable) == $0 } }) else { continue }
            let group = getpgid(pid)
            if group > 1 && group != getpgid(0) { kill(-group, SIGKILL) }
            kill(pid, SIGKILL)
            killed += 1
        }
        return killed
    }
}
