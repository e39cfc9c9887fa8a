import KeijiCore

/// Writes the SQLite query view on its own actor, on the engine's ``BackgroundThread`` (not the cooperative
/// pool), so a large flush (thousands of rows) never delays a firing on the engine. The engine hands it a
/// copy-on-write snapshot of the state and the names of the tasks that changed; only those rows (and the new
/// runs) are written.
actor ViewWriter {
    private let view: QueryView
    private nonisolated let thread: BackgroundThread
    /// What recovery found the view lacking, done with the first write (off the engine's start: see
    /// ``ViewCatchUp``), and kept until a write succeeds.
    private var catchUp: ViewCatchUp?

    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    init(view: QueryView, catchUp: ViewCatchUp, on thread: BackgroundThread) {
        self.view = view
        self.thread = thread
        self.catchUp = catchUp.isNeeded ? catchUp : nil
    }

    /// Writes the rows of `touched` from `state` (a touched task missing from it is deleted) in one
    /// transaction, after any catch-up still owed: whole rows for `redefined` tasks, the run columns for the
    /// rest. Returns the error if nothing could be written.
    func write(_ state: SchedulerState, touched: Set<TaskName>, redefined: Set<TaskName>, newRuns: [(TaskName, RunSummary)]) -> (any Error)? {
        do {
            if let owed = catchUp {
                // Every row the catch-up or this flush touches, from the newest state; that includes the new runs.
                try view.perform(owed, state: state, alsoTouched: touched)
                catchUp = nil
            } else {
                try view.apply(touched: touched, state: state, newRuns: newRuns, definitionsChanged: redefined)
            }
            return nil
        } catch {
            return error
        }
    }
}
