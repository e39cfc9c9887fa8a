import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A task folder being created or replaced, so that a refused or failed `--create` leaves nothing half-made:
/// a folder it replaces is moved aside first, and `rollback()` removes the new one and puts the old one back.
struct StagedTaskFolder {
    let directory: String
    private let aside: String?

    /// Moves an existing `directory` aside (when there is one) and creates an empty one with `mode`.
    init(_ directory: String, mode: mode_t) throws {
        self.directory = directory
        if FileSystem.exists(directory) {
            let aside = directory + ".keiji-replaced-\(getpid())"
            try FileSystem.remove(aside)
            guard rename(directory, aside) == 0 else {
                throw CLIError("cannot replace \(directory): \(String(cString: strerror(errno)))")
            }
            self.aside = aside
        } else {
            aside = nil
        }
        do {
            try FileSystem.createDirectory(directory, mode: mode)
        } catch {
            rollback()
            throw error
        }
    }

    /// The new folder stays: the old one, if any, is deleted.
    func commit() {
        if let aside { try? FileSystem.remove(aside) }
    }

    /// Back to how it was before `init`.
    func rollback() {
        try? FileSystem.remove(directory)
        if let aside { rename(aside, directory) }
    }
}

/// A task binary being installed by `--build`, so that a refused save leaves the previous binary (or none)
/// in place: the one it replaces is kept as a hard link until `commit()`.
struct StagedExecutable {
    let path: String
    private let previous: String?

    /// Call before the new binary is installed at `path`.
    init(_ path: String) {
        self.path = path
        let previous = path + ".keiji-previous-\(getpid())"
        unlink(previous)
        self.previous = link(path, previous) == 0 ? previous : nil
    }

    func commit() {
        if let previous { unlink(previous) }
    }

    func rollback() {
        if let previous { rename(previous, path) } else { unlink(path) }
    }
}
