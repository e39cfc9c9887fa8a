import Foundation

/// The query view: derived from the journal, never the source of truth, in SQLite or PostgreSQL
/// (``ViewLocation``, from `DB_URL`).
///
/// Tables: `task_models` with the seed's columns (so `sqlite3`, `psql` and `keiji task --get` read what the
/// original showed) plus `ScheduleInfo` (schedule, zone and jitter as JSON) and `Policy` (the run policy as
/// JSON), `runs` (history: slot, start, end, lateness, exit code or signal, attempt, trigger), and
/// `applied_lsn`. Each applied batch is one transaction that also moves `applied_lsn`, so the view is always a
/// consistent prefix of the journal. If the view is missing, damaged or from another schema, it is rebuilt
/// from the state (checkpoint + journal replay).
///
/// This type decides which rows to write and their values, for both databases; ``ViewDatabase`` says how, in
/// each one's dialect and in as few statements as it can.
public final class QueryView {
    // 2: ID is the task's own number, not a rowid; Policy column. 3: Executable shows a direct exec as such (rows
    // are rewritten only when their definition changes, so a new derivation needs a rebuild). 4: runs name their
    // node; in PostgreSQL, applied_lsn has a row per node (a cluster's nodes share the view). 5: `runs` has a row
    // per history entry, not per RunId (``RunRow/keyColumns``); in SQLite its one index is runs_by_task. 6: runs are
    // ordered and trimmed by when they were written (SQLite's rowid, PostgreSQL's `Seq`), not by `EndTime`. 7: runs
    // have `DurationMs`, the run's own monotonic measure (a clock step between its start and end is not in it).
    public static let schemaVersion = 7
    public let database: any ViewDatabase
    private let workspace: Workspace
    private let defaultTimeZone: TimeZone

    public init(database: any ViewDatabase, workspace: Workspace, defaultTimeZone: TimeZone) {
        self.database = database
        self.workspace = workspace
        self.defaultTimeZone = defaultTimeZone
    }

    /// Opens the view at `location`, resetting it when it is missing, damaged or of another schema. Returns
    /// whether it was created afresh (and so must be rebuilt).
    public static func openOrReset(_ location: ViewLocation, workspace: Workspace, defaultTimeZone: TimeZone,
                                   verifying: Bool = true) throws -> (QueryView, fresh: Bool) {
        let (database, fresh) = try location.openOrReset(verifying: verifying)
        return (QueryView(database: database, workspace: workspace, defaultTimeZone: defaultTimeZone), fresh)
    }

    /// The rules the rows' derived columns (next run, `Executable`) are computed by, recorded in `meta` at each rebuild:
    /// change it with any rule that changes them. A view another keiji wrote by other rules is rebuilt at the next
    /// catch-up; after an upgrade over a crashed scheduler its rows kept the old next runs and executables.
    public static let rowRules = "2026-12-07"

    /// Whether the view's rows were written by other rules than ``rowRules`` (or by a keiji that recorded none).
    public func rowRulesDiffer() throws -> Bool { try database.metaValue("row_rules") != Self.rowRules }

    /// The last journal LSN the view reflects.
    public func appliedLSN() throws -> UInt64 { try database.appliedLSN() }

    /// Writes the rows of `touched` tasks from `state` (deleting those that are gone) and moves
    /// `applied_lsn`, in one transaction. Rows depend on `state` alone, so a rebuilt view equals a live one.
    /// With `newRuns`, only those runs are inserted (the live path); without, every run `state` remembers for
    /// the touched tasks is written, over their old rows (a catch-up at start).
    /// - Parameter definitionsChanged: the touched tasks whose definition may have changed since their row was
    ///   written (nil: all of them). The others only had runs, so only their run columns are updated: a flush
    ///   at ten thousand firings a second does not re-encode ten thousand schedules and policies as JSON.
    /// - Parameter deleted: tasks deleted since the view was last written, whether or not a task of the name was
    ///   created again since (a cluster node applies the commands it pulls, delete and create, before one flush):
    ///   their rows and runs go first, so a new task of an old name starts with its own.
    public func apply(touched: Set<TaskName>, state: SchedulerState, newRuns: [(TaskName, RunSummary)]? = nil,
                      definitionsChanged: Set<TaskName>? = nil, deleted: Set<TaskName> = []) throws {
        try database.transaction {
            try write(touched: touched.union(deleted), state: state, newRuns: newRuns, definitionsChanged: definitionsChanged, deleted: deleted)
        }
    }

    /// Replaces the whole view with `state`, in one transaction (a crash leaves the old view or the new one).
    public func rebuild(from state: SchedulerState) throws {
        try database.transaction {
            // A shared view's tasks this node does not have are not its to delete: a node with a new journal deleted
            // every task's row and every node's runs of them.
            let present = database.isShared ? [] : try database.taskNames().compactMap { try? TaskName($0) }
            try database.deleteAllRows()
            try write(touched: Set(state.tasks.keys).union(present), state: state, newRuns: nil, runsDeleted: true)
            try database.setMetaValue("row_rules", to: Self.rowRules)
        }
    }

    /// One batch: deleted tasks, then the narrow updates (whole rows for those that turn out to have none), the
    /// whole rows, the runs, the trim of each task's history, and `applied_lsn`.
    ///
    /// A task's `runs` rows are its history as the state remembers it (``TaskState/recentRuns``), an entry each: with
    /// `newRuns`, entries are added; without, each whole task's history is written again (its old rows deleted first
    /// unless `runsDeleted`).
    private func write(touched: Set<TaskName>, state: SchedulerState, newRuns: [(TaskName, RunSummary)]?,
                       definitionsChanged: Set<TaskName>? = nil, deleted: Set<TaskName> = [], runsDeleted: Bool = false) throws {
        let rows = ViewRowMaker(workspace: workspace, defaultTimeZone: defaultTimeZone, state: state)
        var gone: [String] = []
        var narrow: [TaskRunValues] = []
        var whole: [TaskName] = []
        for name in touched.sorted() {
            guard let task = state.tasks[name] else {
                gone.append(name.rawValue)
                continue
            }
            if deleted.contains(name) {
                gone.append(name.rawValue)  // and created again: its old row and runs go, a whole new row is written
                whole.append(name)
            } else if let definitionsChanged, !definitionsChanged.contains(name) {
                narrow.append(rows.runValues(of: task))
            } else {
                whole.append(name)
            }
        }
        try database.deleteTasks(named: gone)
        let missing = try database.updateRunValues(narrow)
        whole += narrow.compactMap { missing.contains($0.name) ? try? TaskName($0.name) : nil }
        // Whole rows (and, in a rebuild, their runs) are made a slice at a time: made all at once, a rebuild of
        // 100,000 tasks left a heap of ~100 MB behind that stayed resident for the scheduler's life.
        for slice in Self.slices(of: whole.count) {
            try database.upsertTasks(whole[slice].compactMap { state.tasks[$0].map(rows.row(of:)) })
            if newRuns == nil {
                if !runsDeleted { try database.deleteRuns(of: whole[slice].map(\.rawValue)) }
                try database.insertRuns(whole[slice].flatMap { name in state.tasks[name]?.recentRuns.map { RunRow($0, task: name, node: database.node) } ?? [] })
            }
        }
        if let newRuns {
            try database.insertRuns(newRuns.compactMap { state.tasks[$0.0] != nil ? RunRow($0.1, task: $0.0, node: database.node) : nil })
        }
        let trimmed = newRuns.map { Set($0.map(\.0)) } ?? Set(whole)
        try database.trimRuns(of: trimmed.map(\.rawValue).sorted(), keeping: SchedulerState.recentRunLimit)
        try database.setAppliedLSN(state.lastLSN)
    }

    /// Index ranges of at most 256 items covering `count`: a batch per statement, its memory bounded.
    static func slices(of count: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: 256).map { $0..<min($0 + 256, count) }
    }
}
