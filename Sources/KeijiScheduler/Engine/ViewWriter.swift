import CMalloc
import Foundation
import KeijiCore

/// Writes the query view on its own actor, so a large flush (thousands of rows) never delays a firing on the
/// engine. The engine hands it a copy-on-write snapshot of the state and the names of the tasks that changed;
/// only those rows (and the new runs) are written.
///
/// The actor runs on the engine's ``BackgroundThread``, not on Swift's cooperative pool: SQLite's writes and
/// every libpq call (a round trip to PostgreSQL) block, and a flush of thousands of rows holds its thread for
/// milliseconds; on the pool (two threads here) the timer loop would wait behind it.
actor ViewWriter {
    private nonisolated let thread: BackgroundThread
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    private let location: ViewLocation
    private let workspace: Workspace
    private let defaultTimeZone: TimeZone
    private var view: QueryView?
    /// What recovery found the view lacking, done with the first write (off the engine's start: see
    /// ``ViewCatchUp``), and kept until a write succeeds.
    private var catchUp: ViewCatchUp?

    init(location: ViewLocation, workspace: Workspace, defaultTimeZone: TimeZone, on thread: BackgroundThread) {
        self.thread = thread
        self.location = location
        self.workspace = workspace
        self.defaultTimeZone = defaultTimeZone
    }

    /// Opens the view (connects, for PostgreSQL), resetting it if it is missing, damaged or of another schema;
    /// returns whether it was created afresh. Throws, naming `DB_URL`, if the database cannot be used.
    func open() throws -> Bool {
        let (view, fresh) = try QueryView.openOrReset(location, workspace: workspace, defaultTimeZone: defaultTimeZone)
        // Unsynced commits (see SQLiteViewDatabase.beginUnsyncedWrites): if the marker cannot be written, the
        // connection keeps syncing, which is only slower.
        try? view.database.beginUnsyncedWrites()
        self.view = view
        return fresh
    }

    /// Makes the view durable (a clean stop): the next start, after a reboot too, finds it current.
    func close() {
        // If this fails the view stays marked unsynced: after a reboot it is rebuilt from the journal, nothing is lost.
        try? view?.database.endUnsyncedWrites()
    }

    /// A planned catch-up not yet written.
    var owesCatchUp: Bool { catchUp != nil }

    /// Decides what bringing the opened view up to `loaded` takes (it reads `applied_lsn`); the first
    /// ``write(_:touched:redefined:newRuns:)`` does it.
    func planCatchUp(with loaded: StateLoader.Loaded, fresh: Bool, journalLostRecords: Bool) throws -> ViewCatchUp {
        let plan = try opened().planCatchUp(with: loaded, fresh: fresh, journalLostRecords: journalLostRecords)
        catchUp = plan.isNeeded ? plan : nil
        return plan
    }

    /// Writes the rows of `touched` from `state` (a touched task missing from it is deleted) in one
    /// transaction, after any catch-up still owed: whole rows for `redefined` tasks, the run columns for the
    /// rest; the rows and runs of `deleted` tasks go first (see ``QueryView/apply(touched:state:newRuns:definitionsChanged:deleted:)``).
    /// Returns the error if nothing could be written.
    func write(_ state: SchedulerState, touched: Set<TaskName>, redefined: Set<TaskName>, newRuns: [(TaskName, RunSummary)],
               deleted: Set<TaskName>) -> (any Error)? {
        do {
            let view = try opened()
            if let owed = catchUp {
                // Every row the catch-up or this flush touches, from the newest state; that includes the new runs.
                try view.perform(owed, state: state, alsoTouched: touched, deleted: deleted)
                catchUp = nil
                // A catch-up writes every row of a large view once per start: the pages SQLite cached, and what
                // it freed in this thread's malloc arena, stay resident for the scheduler's life: give them back.
                view.database.releaseCachedPages()
                malloc_trim(0)
            } else {
                try view.apply(touched: touched, state: state, newRuns: newRuns, definitionsChanged: redefined, deleted: deleted)
            }
            return nil
        } catch let error as KeijiError where error.code == .databaseDamaged {
            // Damage since the start's check (a disk error, a hand edit): the view is set aside and a new one opened,
            // which the engine's retry fills. Without this every flush failed until a restart. The old connection
            // is closed first: it still holds the file being set aside, whose WAL and shared-memory files have the
            // names the new file's will have.
            view = nil
            if (try? open()) != nil { catchUp = .rebuild }
            return error
        } catch {
            if error is ViewCommitsLost { catchUp = .rebuild }  // the engine's retry rewrites every row
            return error
        }
    }

    private func opened() throws -> QueryView {
        guard let view else { throw KeijiError(.database, "the query view is not open") }
        return view
    }
}
