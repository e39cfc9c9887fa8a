import KeijiCore
import KeijiJournal

/// What the CLI says when a read of the query view meets a damaged file (SQLite's `SQLITE_CORRUPT` or `SQLITE_NOTADB`).
/// With no scheduler running, the view is rebuilt from the journal at once, as a scheduler's start would; with one
/// running, its restart does it (a write of its own would too, but a run may be hours away, and a command's checks
/// read the view first). Either way the command is not run again by itself: it may already have sent something.
enum ViewRepair {
    static func message(after damage: KeijiError) async -> String {
        guard let (workspace, settings) = try? loadWorkspace() else { return damage.message }
        do {
            guard try await OfflineCommands.rebuildView(workspace: workspace, settings: settings, repaired: Console.journalRepaired) else {
                return "\(damage.message); the query view passed SQLite's check afterwards and was brought up to date: run the command again"
            }
            return "\(damage.message); the query view was damaged: it has been set aside (keiji.db.damaged) and rebuilt from the journal, run the command again"
        } catch let error as KeijiError where error.code == .journalHeld {
            return "\(damage.message); the query view is damaged: restart the scheduler to rebuild it from the journal (keiji system --stop, then keiji system --start)"
        } catch {
            return "\(damage.message); the query view is damaged and could not be rebuilt: \(error)"
        }
    }

    /// Rebuilds a SQLite view that is missing while the journal holds segments (a journal restored alone, a deleted
    /// `keiji.db`) before a task command reads it, as a scheduler's start would: read as it was, it said "no tasks"
    /// of tasks the journal has, and `--create` saved over one of them without `--force`. With a scheduler running,
    /// its restart rebuilds it (it writes to the file it opened, which is gone). A view in PostgreSQL is shared by the
    /// cluster's nodes and is left to their schedulers.
    static func restoreIfMissing(workspace: Workspace, settings: Settings) async throws {
        guard case .sqlite(let path, _) = ViewLocation(settings: settings, workspace: workspace), !FileSystem.exists(path),
              FileSystem.exists(workspace.journalDirectory),
              try !JournalDirectory(path: workspace.journalDirectory).segments().isEmpty else { return }
        // Under the lock a `--create` checks the view in: it waits for the whole view, not an empty one being filled.
        let lock = try WorkspaceChangeLock(workspace)
        defer { lock.release() }
        guard !FileSystem.exists(path) else { return }  // another call rebuilt it meanwhile
        do {
            _ = try await OfflineCommands.rebuildView(workspace: workspace, settings: settings, repaired: Console.journalRepaired)
            Console.progress("the query view \(path) was missing: rebuilt from the journal")
        } catch let error as KeijiError where error.code == .journalHeld {
            guard try ServiceControl(workspace: workspace).runningPID(.scheduler) != nil else {
                throw CLIError("the query view \(path) is missing, and another keiji command holds the journal: run this one again")
            }
            throw CLIError("the query view \(path) is missing: restart the scheduler to rebuild it from the journal "
                           + "(keiji system --stop, then keiji system --start)")
        }
    }
}
