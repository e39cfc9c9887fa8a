import KeijiCore

/// Whether the query view's "running" flags describe runs that a crash already ended. A run dies with its scheduler
/// (the spawn server kills every group it started when the scheduler goes away), and a clean stop journals how each
/// run ended; so with no scheduler running, a task the SQLite view still marks running had its run ended by a crash,
/// which the next start records. On PostgreSQL another node may be running it.
enum CrashedRuns {
    static func viewMayShowThem(_ view: ViewLocation, workspace: Workspace) -> Bool {
        guard case .sqlite = view else { return false }
        do {
            return try ServiceControl(workspace: workspace).runningPID(.scheduler) == nil
        } catch {
            return false  // a pid file that cannot be read tells nothing: the flags are shown as they are
        }
    }
}
