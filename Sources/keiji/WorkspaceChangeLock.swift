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
///
/// Waits are bounded: a holder that never lets go (a command stopped with Ctrl-Z in another terminal) made every later
/// create or stop wait forever. Past ``longestWait`` (``longestServicesWait`` for the services lock) the call fails,
/// naming the lock file and, from `/proc/locks`, the holder's pid. A wait can also end on the caller's word
/// (``Interrupted``): a start (or a restart that has stopped nothing yet) holds back Ctrl-C, and one pressed while it
/// waited went unheeded until the holder let go.
struct WorkspaceChangeLock {
    /// A create holds the workspace lock while its command is delivered: up to 15 s for the bus's answer, and as long
    /// as the offline path waits for the journal (``JournalTurn/longestWait``).
    static let longestWait: Duration = .seconds(60)
    /// A start holds the services lock until the service reports ready, for up to ``ReadinessWait``'s 120 s.
    static let longestServicesWait: Duration = .seconds(180)

    private let descriptor: Int32

    /// Waits for the lock, saying so when another call holds it, for up to `limit` (a test's wait is shorter than a call's).
    init(_ workspace: Workspace, waitingAtMost limit: Duration = longestWait) throws {
        try self.init(workspace, file: "workspace-changes.lock", waiting: "changes the workspace", for: limit)
    }

    /// The lock on starting and stopping the workspace's services. `interrupted` is asked while it waits (every 10 ms):
    /// once it says yes, the wait ends with ``Interrupted``.
    static func services(_ workspace: Workspace, unless interrupted: () -> Bool = { false }) throws -> WorkspaceChangeLock {
        try WorkspaceChangeLock(workspace, file: "services.lock", waiting: "starts or stops the services", for: longestServicesWait,
                                unless: interrupted)
    }

    private init(_ workspace: Workspace, file: String, waiting what: String, for limit: Duration, unless interrupted: () -> Bool = { false }) throws {
        try workspace.createSystemDirectories()
        let path = workspace.systemRoot + "/" + file
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        let deadline = ContinuousClock.now + limit
        var said = false
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK else {
                close(descriptor)
                throw CLIError("cannot lock \(path): \(String(cString: strerror(code)))")
            }
            guard !interrupted() else {
                close(descriptor)
                throw Interrupted()
            }
            guard ContinuousClock.now < deadline else {
                let holder = LockHolder.naming(descriptor)
                close(descriptor)
                throw HeldTooLong(description: "another keiji call\(holder) has held \(path) for over \(limit.components.seconds) s; "
                                  + "nothing was done: retry once it ends (a command stopped with Ctrl-Z holds it until resumed)")
            }
            if !said {
                Console.progress("waiting for another keiji call\(LockHolder.naming(descriptor)) that \(what)…")
                said = true
            }
            usleep(10_000)
        }
    }

    func release() { close(descriptor) }

    /// The wait was given up because its `interrupted` said so; the lock was not taken.
    struct Interrupted: Error {}

    /// The lock was still held elsewhere after the longest wait.
    struct HeldTooLong: Error, CustomStringConvertible {
        let description: String
    }
}
