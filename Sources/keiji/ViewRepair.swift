import KeijiCore

/// What the CLI says when a read of the query view meets a damaged file (SQLite's `SQLITE_CORRUPT` or `SQLITE_NOTADB`).
/// With no scheduler running, the view is rebuilt from the journal at once, as a scheduler's start would; with one
/// running, its restart does it (a write of its own would too, but a run may be hours away, and a command's checks
/// read the view first). Either way the command is not run again by itself: it may already have sent something.
enum ViewRepair {
    static func message(after damage: KeijiError) async -> String {
        guard let (workspace, settings) = try? loadWorkspace() else { return damage.message }
        do {
            guard try await OfflineCommands.rebuildView(workspace: workspace, settings: settings) else {
                return "\(damage.message); the query view passed SQLite's check afterwards and was brought up to date: run the command again"
            }
            return "\(damage.message); the query view was damaged: it has been set aside (keiji.db.damaged) and rebuilt from the journal, run the command again"
        } catch let error as KeijiError where error.code == .journalHeld {
            return "\(damage.message); the query view is damaged: restart the scheduler to rebuild it from the journal (keiji system --stop, then keiji system --start)"
        } catch {
            return "\(damage.message); the query view is damaged and could not be rebuilt: \(error)"
        }
    }
}
