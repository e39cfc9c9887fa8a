/// A database that holds the query view: SQLite (``SQLiteViewDatabase``) or PostgreSQL
/// (``PostgresViewDatabase``). Each conformer is the one place its dialect lives (SQL text, placeholders,
/// upserts, quoting of the seed's CamelCase column names); what is written, and when, is decided once, by
/// ``QueryView``, for both.
///
/// Implementation requirements:
/// - The tables are `meta` (`schema_version`), `task_models` (``TaskModelRow/columns``, unique `Name`, `TaskId`
///   and `Slug`), `runs` (``RunRow/columns``, a row per entry of a task's history: SQLite's writers never insert one twice, PostgreSQL's unique index on ``RunRow/keyColumns`` makes a repeated insert do nothing) and `applied_lsn` (a row; in PostgreSQL one per node), and a tool of the
///   database's own (`sqlite3`, `psql`) shows the seed's column names.
/// - Every write call below is made inside ``transaction(_:)``; a batch is one statement per kind wherever the
///   dialect allows (a round trip to a server costs more than the row).
/// - Not thread-safe: one owner at a time. PostgreSQL's calls block: make them off Swift's cooperative pool.
public protocol ViewDatabase: AnyObject {
    /// Where the view is, for people: the SQLite file, or the PostgreSQL URL with its password masked.
    var location: String { get }
    /// The scheduler whose view this connection writes (`NODE_NAME`): the `Node` of the runs it writes, and in
    /// PostgreSQL, where a cluster's nodes share the tables, its own `applied_lsn` row and the runs a rebuild replaces.
    var node: String { get }

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T

    /// The last journal LSN the view reflects.
    func appliedLSN() throws -> UInt64
    func setAppliedLSN(_ lsn: UInt64) throws
    /// A `meta` value, nil when unset (``QueryView/rowRules``).
    func metaValue(_ key: String) throws -> String?
    func setMetaValue(_ key: String, to value: String) throws

    /// The names of every task with a row.
    func taskNames() throws -> [String]
    /// Shared by a cluster's nodes (PostgreSQL): a rebuild replaces this node's rows and leaves every other row.
    var isShared: Bool { get }
    /// Empties `task_models` and `runs` (a rebuild writes them again in the same transaction); in PostgreSQL, only
    /// this node's runs (the other nodes' are not in its state, and `task_models` is every node's).
    func deleteAllRows() throws
    /// Deletes these tasks' rows and their runs.
    func deleteTasks(named names: [String]) throws
    /// Writes the run columns of existing rows; returns the names that had no row (they need a whole one).
    func updateRunValues(_ rows: [TaskRunValues]) throws -> Set<String>
    /// Inserts or replaces whole rows by `Name` (keeping ``TaskModelRow/keptOnUpdate``). A row of another name
    /// holding one of their numbers (`ID`) can only be stale, and is deleted first.
    func upsertTasks(_ rows: [TaskModelRow]) throws
    /// Adds these entries to their tasks' histories. A flush adds each entry once (a failed one is rolled back
    /// and made again); in PostgreSQL, where a commit can succeed with its reply lost and the flush is made again,
    /// an entry already there is left as it is.
    func insertRuns(_ rows: [RunRow]) throws
    /// Deletes the runs of these tasks (in PostgreSQL, the ones this node wrote), before their whole histories
    /// are written again.
    func deleteRuns(of names: [String]) throws
    /// Keeps the `limit` latest runs of each named task: the last written (SQLite's rowid, PostgreSQL's `Seq`), which
    /// are the last made. Not by `EndTime`: after the wall clock stepped back, a task's new runs ended "before" its
    /// old ones and were dropped as they were written.
    func trimRuns(of names: [String], keeping limit: Int) throws
    /// Gives back the memory the connection keeps for pages it has read or written (after a bulk write such as a
    /// rebuild). The default does nothing: only SQLite's connection caches pages in this process.
    func releaseCachedPages()
    /// A long-lived writer (the scheduler) stops waiting for each commit to be durable: the view is derived from
    /// the journal, and one lost to a machine crash is rebuilt (see ``SQLiteViewDatabase``). The default does
    /// nothing (PostgreSQL keeps its own durability, on another machine's disk).
    func beginUnsyncedWrites() throws
    /// Makes everything written durable and ends ``beginUnsyncedWrites()`` (a clean stop).
    func endUnsyncedWrites() throws

    /// `task_models` rows with these columns (names from ``TaskModelRow/columns``), of one task or all by name.
    func taskModels(_ columns: [String], where filter: TaskModelFilter) throws -> [[String?]]
    /// Per task, by name: these `task_models` columns, then these `runs` columns of its latest run (the last
    /// written, as ``trimRuns(of:keeping:)``; NULLs before any run). One statement, so the two tables are read at one moment.
    func tasksWithLatestRun(_ taskColumns: [String], runColumns: [String]) throws -> [[String?]]
    /// The `limit` latest runs of one task (the last written first, as ``trimRuns(of:keeping:)``), with these `runs`
    /// columns (names from ``RunRow/columns``).
    func runs(_ columns: [String], of task: String, limit: Int) throws -> [[String?]]
}

extension ViewDatabase {
    public func releaseCachedPages() {}
    public func beginUnsyncedWrites() throws {}
    public func endUnsyncedWrites() throws {}
}

/// Which `task_models` rows a read wants.
public enum TaskModelFilter: Sendable {
    case all
    case name(String)
    /// The task whose lowercased name is this (a unique column: one lookup whatever the number of tasks).
    case slug(String)
}
