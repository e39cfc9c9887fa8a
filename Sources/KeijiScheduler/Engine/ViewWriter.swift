import KeijiCore

/// Writes the SQLite query view on its own actor, so a large flush (thousands of rows) never delays a firing
/// on the engine. The engine hands it a copy-on-write snapshot of the state and the names of the tasks that
/// changed; only those rows (and the new runs) are written.
actor ViewWriter {
    private let view: QueryView

    init(view: QueryView) { self.view = view }

    /// Writes the rows of `touched` from `state` (a touched task missing from it is deleted) in one
    /// transaction. Returns the error if nothing could be written.
    func write(_ state: SchedulerState, touched: Set<TaskName>, newRuns: [(TaskName, RunSummary)]) -> (any Error)? {
        do {
            try view.apply(touched: touched, state: state, newRuns: newRuns)
            return nil
        } catch {
            return error
        }
    }
}
