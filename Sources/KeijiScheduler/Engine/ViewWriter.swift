import KeijiCore

/// Writes the SQLite query view on its own actor, so a large flush (thousands of rows) never delays a firing
/// on the engine. The engine hands it only what changed: the affected tasks' rows and the new runs.
actor ViewWriter {
    private let view: QueryView
    private var failures = 0

    init(view: QueryView) { self.view = view }

    /// - Parameter changes: the state restricted to the changed tasks (a task missing from it is deleted).
    func write(_ changes: SchedulerState, touched: Set<TaskName>, newRuns: [(TaskName, RunSummary)]) -> (any Error)? {
        do {
            try view.apply(touched: touched, state: changes, newRuns: newRuns)
            return nil
        } catch {
            failures += 1
            return error
        }
    }
}
