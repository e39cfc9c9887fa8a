import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Serializes the CLI calls of one workspace that replace or remove task folders (`task --create`, `task --delete
/// --remove-source`). Two `--create --force` of one name at once each moved the other's new folder aside: both could
/// fail with the saved task's `.env` gone, or one definition was saved beside the other's `.env`. An advisory
/// `flock` on `~/.keiji/task-folders.lock`, which the kernel releases if the process dies.
struct TaskFolderLock {
    private let descriptor: Int32

    /// Waits for the lock, saying so when another call holds it.
    init(_ workspace: Workspace) throws {
        try workspace.createSystemDirectories()
        let path = workspace.systemRoot + "/task-folders.lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            Console.progress("waiting for another keiji call that changes a task folder…")
            while flock(descriptor, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    let reason = String(cString: strerror(errno))
                    close(descriptor)
                    throw CLIError("cannot lock \(path): \(reason)")
                }
            }
        }
    }

    func release() { close(descriptor) }
}
