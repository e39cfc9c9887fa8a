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

    /// The folder is read and emptied through a descriptor opened without following a link: a run that put one in its
    /// place (after ``Workspace/createSystemDirectories(say:)`` replaced any) had this start remove the `.error` files
    /// of the folder it named. Such a link leaves the runs without error files.
    init(preparing directory: String) {
        let fd = (try? FileSystem.createDirectory(directory)) == nil ? -1 : open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let stream = fdopendir(fd) else {
            if fd >= 0 { close(fd) }
            self.directory = nil
            return
        }
        defer { closedir(stream) }
        while let entry = readdir(stream) {
            // Read in place: a copy of the whole 256-byte d_name can read past the end of readdir's buffer.
            let bytes = UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            let name = String(cString: bytes.assumingMemoryBound(to: CChar.self))
            if name.hasSuffix(".error") { unlinkat(fd, name, 0) }
        }
        self.directory = directory
    }

    func path(for runID: String) -> String? { directory.map { $0 + "/" + runID + ".error" } }
}
