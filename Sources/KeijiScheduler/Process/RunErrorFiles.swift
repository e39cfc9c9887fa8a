import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The folder of the runs' `KEIJI_ERROR_FILE`s (`<run id>.error`, where a task built with the SDK leaves the message
/// it threw). Prepared once, when the scheduler starts and holds the journal's lock: created, and emptied of the
/// files a crash left behind (each run removes its own when it ends). So a run neither creates the folder nor
/// clears its file first: two path lookups fewer per run, ~2.5 % of the scheduler's CPU at 1,000 spawning runs a
/// second (a profile of the peer benchmark). Run IDs do not repeat within a process (``RunIDGenerator``), so no
/// run meets another's file.
struct RunErrorFiles: Sendable {
    /// nil when the folder could not be prepared: runs then get no error file (their exit status still counts).
    let directory: String?

    init(preparing directory: String) {
        guard (try? FileSystem.createDirectory(directory)) != nil else {
            self.directory = nil
            return
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".error") {
            unlink(directory + "/" + name)
        }
        self.directory = directory
    }

    func path(for runID: String) -> String? { directory.map { $0 + "/" + runID + ".error" } }
}
