import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Serializes the CLI calls of one workspace that change what another call's checks read: a task folder replaced or
/// removed (`task --create`, `task --delete --remove-source`), a task's binary installed or removed (the install of a
/// `task --build`, `task --delete`), and a missing view being rebuilt
/// (``ViewRepair/restoreIfMissing(workspace:settings:)``). Two `--create --force` of one name at once each moved the
/// other's new folder aside: both could fail with the saved task's `.env` gone, or one definition was saved beside
/// the other's `.env`; and a `--create` that read a view half rebuilt found no task to refuse. An advisory `flock` on
/// `~/.keiji/workspace-changes.lock`, which the kernel releases if the process dies.
///
/// ``services(_:)`` is a second lock of the same kind, on `~/.keiji/services.lock`, held while a service is started or
/// stopped: two `system --start` at once each spawned a bus, the refused one removed the other's pid file, and that
/// bus ran on where no keiji command could see or stop it. It is a lock of its own so that a create never waits for
/// the scheduler's recovery, and a call that holds one may take the other.
struct WorkspaceChangeLock {
    private let descriptor: Int32

    /// Waits for the lock, saying so when another call holds it.
    init(_ workspace: Workspace) throws {
        try self.init(workspace, file: "workspace-changes.lock", waiting: "waiting for another keiji call that changes the workspace…")
    }

    /// The lock on starting and stopping the workspace's services.
    static func services(_ workspace: Workspace) throws -> WorkspaceChangeLock {
        try WorkspaceChangeLock(workspace, file: "services.lock", waiting: "waiting for another keiji call that starts or stops the services…")
    }

    private init(_ workspace: Workspace, file: String, waiting: String) throws {
        try workspace.createSystemDirectories()
        let path = workspace.systemRoot + "/" + file
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            Console.progress(waiting)
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
