import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Waits for the journal while another keiji call, not a scheduler, holds it. Opening the journal retries its lock
/// for only 2 s; several offline calls taking turns on it can keep one waiting longer (the lock is not
/// fair), and that call then said "the scheduler is running but not reachable through keiji-bus" with no scheduler
/// running: a quarter of a sustained parallel script's commands. Now a call waits its turn, saying so once, and
/// the scheduler is named only when one runs.
enum JournalTurn {
    /// Far longer than any offline command holds the journal (a replay and an append), short of a wait that looks hung.
    static let longestWait: Duration = .seconds(30)

    /// Runs `attempt`, again while it finds the journal held and no scheduler runs, for up to ``longestWait``.
    /// A held journal with a scheduler running is the caller's to handle (the bus, or a refusal): rethrown at once.
    static func waiting<T>(in workspace: Workspace, _ attempt: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + longestWait
        var said = false
        while true {
            do {
                return try await attempt()
            } catch let error where isHeld(error) {
                guard try ServiceControl(workspace: workspace).runningPID(.scheduler) == nil else { throw error }
                guard ContinuousClock.now < deadline else {
                    throw CLIError("another keiji call\(holder(workspace)) has held the journal (\(workspace.journalDirectory)) "
                                   + "for over \(longestWait.components.seconds) s; nothing was written: retry once it ends")
                }
                if !said {
                    Console.progress("waiting for another keiji call\(holder(workspace)) that holds the journal…")
                    said = true
                }
            }
        }
    }

    private static func isHeld(_ error: any Error) -> Bool {
        if let error = error as? KeijiError { return error.code == .journalHeld }
        if let error = error as? JournalError { return error.code == .locked }
        return false
    }

    private static func holder(_ workspace: Workspace) -> String {
        let fd = open(workspace.journalDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        return LockHolder.naming(fd)
    }
}
