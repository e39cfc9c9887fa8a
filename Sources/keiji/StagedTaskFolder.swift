import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A task folder being created or replaced, so that a refused or failed `--create` leaves nothing half-made:
/// a folder it replaces is moved aside first, and `rollback()` removes the new one and puts the old one back;
/// `commit()` keeps it as a backup beside the new one unless it held only what keiji wrote.
/// A command task's folder is kept instead, with what its owner put in it (`keepingFiles`): only its `.env`
/// is keiji's, and `rollback()` puts that back.
struct StagedTaskFolder {
    let directory: String
    private let aside: String?
    /// With `keepingFiles`, the `.env` the folder had (nil: none), for `rollback()`.
    private let previousEnvironment: Data??

    /// Moves an existing `directory` aside (when there is one) and creates an empty one with `mode`; with
    /// `keepingFiles`, an existing one stays as it is. A forced create of a command task emptied its folder, and
    /// the scripts its command ran were gone.
    init(_ directory: String, mode: mode_t, keepingFiles: Bool = false) throws {
        self.directory = directory
        if keepingFiles, FileSystem.exists(directory) {
            aside = nil
            previousEnvironment = .some(FileManager.default.contents(atPath: directory + "/.env"))
            // keiji's own leftovers (the temporary file of a create killed while it wrote the .env) go.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(".env.tmp-") {
                unlink(directory + "/" + name)
            }
            return
        }
        previousEnvironment = nil
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

    /// The new folder stays. The old one, if any, is deleted when it held only what `--create` writes, untouched;
    /// else it is kept beside the new one as `<name>.replaced-<UTC time>` (a name no task can have, so no build
    /// compiles it), and its path is returned: a forced create replaced a Swift task's edited sources without a word.
    @discardableResult
    func commit(now: Date = Date()) -> String? {
        guard let aside else { return nil }
        if WorkspaceTemplates.holdsOnlyGeneratedFiles(aside) {
            try? FileSystem.remove(aside)
            return nil
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stem = directory + ".replaced-" + formatter.string(from: now)
        for attempt in 1...100 {
            let backup = attempt == 1 ? stem : stem + "-\(attempt)"
            if FileSystem.exists(backup) { continue }
            if rename(aside, backup) == 0 { return backup }
            break
        }
        return aside  // kept under its temporary name rather than lost
    }

    /// Back to how it was before `init`.
    func rollback() {
        if case .some(let environment) = previousEnvironment {
            if let environment { try? FileSystem.writeAtomically(environment, to: directory + "/.env", mode: 0o600) } else { unlink(directory + "/.env") }
            return
        }
        try? FileSystem.remove(directory)
        if let aside { rename(aside, directory) }
    }
}

/// A task binary being installed by `--build`, so that a refused save leaves the previous binary (or none)
/// in place: the one it replaces is kept as a hard link until `commit()`. Made under the workspace-change lock,
/// just before the install: a `--delete` meanwhile would have had its removed binary put back by `rollback()`.
struct StagedExecutable {
    let path: String
    private let previous: String?

    /// Call before the new binary is installed at `path`. What builds of this task that are no longer running left
    /// beside it goes first: a build interrupted while it waited for the scheduler's acknowledgement kept its link (a
    /// whole copy of the old binary) until the task's delete, whatever later builds did.
    init(_ path: String) {
        self.path = path
        let name = (path as NSString).lastPathComponent
        for leftover in Self.leftovers(of: name, in: (path as NSString).deletingLastPathComponent) {
            guard let pid = leftover.split(separator: "-").last.flatMap({ pid_t($0) }), !LiveProcess.isRunning(pid) else { continue }
            unlink(leftover)
        }
        let previous = path + ".keiji-previous-\(getpid())"
        unlink(previous)
        self.previous = link(path, previous) == 0 ? previous : nil
    }

    func commit() {
        if let previous { unlink(previous) }
    }

    /// Back to the previous binary. When nothing was installed, `path` and the kept link are the same file, and
    /// `rename` of one name of a file over another "does nothing, and returns success" (POSIX): the link stayed
    /// behind after every failed install.
    func rollback() {
        guard let previous else { unlink(path); return }
        var kept = stat(), current = stat()
        if stat(previous, &kept) == 0, stat(path, &current) == 0, kept.st_dev == current.st_dev, kept.st_ino == current.st_ino {
            unlink(previous)
        } else {
            rename(previous, path)
        }
    }

    /// What `--build`s of `task` left beside its binary in `directory`, killed midway (or failed, before rollback()
    /// removed the link): kept links and half-copied installs, which `--delete` removes with the binary.
    static func leftovers(of task: String, in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(task + ".keiji-previous-") || $0.hasPrefix(task + ".tmp-") }.map { directory + "/" + $0 }
    }
}
