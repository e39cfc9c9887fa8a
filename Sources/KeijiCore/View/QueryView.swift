import Foundation

/// The SQLite query view (`~/.keiji/db/keiji.db`, WAL): derived from the journal, never the source of truth.
///
/// Tables: `task_models` with the seed's columns (so `sqlite3` and `keiji task --get` read what the original
/// showed) plus `ScheduleInfo` (schedule, zone and jitter as JSON) and `Policy` (the run policy as JSON), `runs`
/// (history: slot, start, end, lateness, exit code or signal, attempt, trigger), and `applied_lsn`. Each applied batch is one transaction that also moves `applied_lsn`, so the view is always
/// a consistent prefix of the journal. If the file is missing, damaged or from another schema, it is rebuilt
/// from the state (checkpoint + journal replay).
public final class QueryView {
    // 2: ID is the task's own number, not a rowid; Policy column. 3: Executable shows a direct exec as such (rows
    // are rewritten only when their definition changes, so a new derivation needs a rebuild).
    public static let schemaVersion = 3
    public let database: SQLiteDatabase
    private let workspace: Workspace
    private let defaultTimeZone: TimeZone

    /// Opens the view read-write, creating the schema. Throws if the file cannot be used.
    public init(path: String, workspace: Workspace, defaultTimeZone: TimeZone) throws {
        database = try SQLiteDatabase(path: path)
        self.workspace = workspace
        self.defaultTimeZone = defaultTimeZone
        try database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")
        try createSchema()
    }

    /// Opens the view at `path`, or, when it is missing, damaged or of another schema, moves it aside and
    /// creates a new one. Returns whether it was created afresh (and so must be rebuilt).
    public static func openOrReset(path: String, workspace: Workspace, defaultTimeZone: TimeZone) throws -> (QueryView, fresh: Bool) {
        let existed = FileSystem.exists(path)
        if existed, let view = try? QueryView(path: path, workspace: workspace, defaultTimeZone: defaultTimeZone), view.isHealthy() {
            return (view, false)
        }
        for suffix in ["", "-wal", "-shm"] where FileSystem.exists(path + suffix) {
            try? FileManager.default.moveItem(atPath: path + suffix, toPath: path + ".damaged" + suffix)
        }
        return (try QueryView(path: path, workspace: workspace, defaultTimeZone: defaultTimeZone), true)
    }

    func isHealthy() -> Bool {
        guard let check = try? database.rows("PRAGMA quick_check"), check.first?.first == "ok",
            let version = try? database.rows("SELECT value FROM meta WHERE key = 'schema_version'"),
            version.first?.first == String(Self.schemaVersion)
        else { return false }
        return true
    }

    private func createSchema() throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '\(Self.schemaVersion)');
            CREATE TABLE IF NOT EXISTS task_models (
                ID INTEGER PRIMARY KEY,
                TaskId TEXT NOT NULL UNIQUE,
                Name TEXT NOT NULL UNIQUE,
                Description TEXT NOT NULL,
                Schedule TEXT NOT NULL,
                ScheduleInfo TEXT NOT NULL,
                LastExecutionTime TEXT,
                NextExecutionTime TEXT,
                LogPath TEXT NOT NULL,
                Slug TEXT NOT NULL UNIQUE,
                Type TEXT NOT NULL,
                Executable TEXT NOT NULL,
                IsRunning INTEGER NOT NULL DEFAULT 0,
                IsQueued INTEGER NOT NULL DEFAULT 0,
                IsError INTEGER NOT NULL DEFAULT 0,
                IsDisabled INTEGER NOT NULL DEFAULT 0,
                ErrorTxt TEXT NOT NULL DEFAULT '',
                Policy TEXT NOT NULL DEFAULT '{}',
                CreatedAt TEXT NOT NULL,
                UpdatedAt TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS runs (
                RunId TEXT PRIMARY KEY,
                TaskName TEXT NOT NULL,
                SlotTime TEXT,
                StartTime TEXT,
                EndTime TEXT NOT NULL,
                LatenessMs INTEGER,
                Outcome TEXT NOT NULL,
                ExitCode INTEGER,
                Signal INTEGER,
                Attempt INTEGER NOT NULL,
                Trigger TEXT NOT NULL,
                Message TEXT
            );
            CREATE INDEX IF NOT EXISTS runs_by_task ON runs (TaskName, EndTime);
            CREATE TABLE IF NOT EXISTS applied_lsn (id INTEGER PRIMARY KEY CHECK (id = 1), lsn INTEGER NOT NULL);
            INSERT OR IGNORE INTO applied_lsn (id, lsn) VALUES (1, 0);
            """)
    }

    /// The last journal LSN the view reflects.
    public func appliedLSN() throws -> UInt64 {
        UInt64(try database.rows("SELECT lsn FROM applied_lsn WHERE id = 1").first?.first??.description ?? "0") ?? 0
    }

    /// Writes the rows of `touched` tasks from `state` (deleting those that are gone) and moves
    /// `applied_lsn`, in one transaction. Rows depend on `state` alone, so a rebuilt view equals a live one.
    /// With `newRuns`, only those runs are inserted (the live path); without, every run `state` remembers for
    /// the touched tasks is written (rebuilds).
    /// - Parameter definitionsChanged: the touched tasks whose definition may have changed since their row was
    ///   written (nil: all of them). The others only had runs, so only their run columns are updated: a flush
    ///   at ten thousand firings a second does not re-encode ten thousand schedules and policies as JSON.
    public func apply(touched: Set<TaskName>, state: SchedulerState, newRuns: [(TaskName, RunSummary)]? = nil,
                      definitionsChanged: Set<TaskName>? = nil) throws {
        try database.transaction { try write(touched: touched, state: state, newRuns: newRuns, definitionsChanged: definitionsChanged) }
    }

    /// Replaces the whole view with `state`, in one transaction (a crash leaves the old view or the new one).
    public func rebuild(from state: SchedulerState) throws {
        try database.transaction {
            let present = Set(try database.rows("SELECT Name FROM task_models").compactMap { $0.first??.description }.compactMap { try? TaskName($0) })
            try database.execute("DELETE FROM task_models; DELETE FROM runs;")
            try write(touched: Set(state.tasks.keys).union(present), state: state, newRuns: nil)
        }
    }

    private func write(touched: Set<TaskName>, state: SchedulerState, newRuns: [(TaskName, RunSummary)]?,
                       definitionsChanged: Set<TaskName>? = nil) throws {
        do {
            let running = Set(state.activeRuns.values.map(\.start.task))  // once, not a scan of every run per row
            let updateRunColumns = try database.prepare("""
                UPDATE task_models SET LastExecutionTime = ?, NextExecutionTime = ?, IsRunning = ?, IsQueued = ?, IsError = ?,
                    IsDisabled = ?, ErrorTxt = ?, UpdatedAt = ? WHERE Name = ?
                """)
            let upsert = try database.prepare("""
                INSERT INTO task_models (ID, TaskId, Name, Description, Schedule, ScheduleInfo, LogPath, Slug, Type, Executable, Policy,
                    CreatedAt, LastExecutionTime, NextExecutionTime, IsRunning, IsQueued, IsError, IsDisabled, ErrorTxt, UpdatedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(Name) DO UPDATE SET ID = excluded.ID, TaskId = excluded.TaskId, Description = excluded.Description,
                    Schedule = excluded.Schedule, ScheduleInfo = excluded.ScheduleInfo, LastExecutionTime = excluded.LastExecutionTime,
                    NextExecutionTime = excluded.NextExecutionTime, LogPath = excluded.LogPath, Slug = excluded.Slug, Type = excluded.Type,
                    Executable = excluded.Executable, IsRunning = excluded.IsRunning, IsQueued = excluded.IsQueued,
                    IsError = excluded.IsError, IsDisabled = excluded.IsDisabled, ErrorTxt = excluded.ErrorTxt, Policy = excluded.Policy,
                    UpdatedAt = excluded.UpdatedAt
                """)
            let deleteTask = try database.prepare("DELETE FROM task_models WHERE Name = ?")
            // A row of another name holding this number can only be stale; it must not block the upsert.
            let freeNumber = try database.prepare("DELETE FROM task_models WHERE ID = ? AND Name <> ?")
            let deleteRuns = try database.prepare("DELETE FROM runs WHERE TaskName = ?")
            let insertRun = try database.prepare("""
                INSERT OR REPLACE INTO runs (RunId, TaskName, SlotTime, StartTime, EndTime, LatenessMs, Outcome, ExitCode, Signal, Attempt, Trigger, Message)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let trimRuns = try database.prepare("""
                DELETE FROM runs WHERE TaskName = ?1 AND RunId NOT IN (SELECT RunId FROM runs WHERE TaskName = ?1 ORDER BY EndTime DESC LIMIT \(SchedulerState.recentRunLimit))
                """)
            for name in touched.sorted() {
                guard let task = state.tasks[name] else {
                    try deleteTask.run([.text(name.rawValue)])
                    try deleteRuns.run([.text(name.rawValue)])
                    continue
                }
                if let definitionsChanged, !definitionsChanged.contains(name) {
                    try updateRunColumns.run(runColumns(for: task, running: running) + [.text(name.rawValue)])
                    if database.changes == 1 { continue }  // else the row is missing: write it whole
                }
                if let number = task.number { try freeNumber.run([.integer(Int64(number)), .text(name.rawValue)]) }
                try upsert.run(row(for: task, running: running))
                if newRuns == nil {
                    for run in task.recentRuns { try insertRun.run(Self.values(run, task: name)) }
                    try trimRuns.run([.text(name.rawValue)])
                }
            }
            if let newRuns {
                for (name, run) in newRuns where state.tasks[name] != nil { try insertRun.run(Self.values(run, task: name)) }
                for name in Set(newRuns.map(\.0)) { try trimRuns.run([.text(name.rawValue)]) }
            }
            try database.prepare("UPDATE applied_lsn SET lsn = ? WHERE id = 1").run([.integer(Int64(state.lastLSN))])
        }
    }

    private static func values(_ run: RunSummary, task name: TaskName) -> [SQLiteValue] {
        [
            .text(run.runID), .text(name.rawValue), .optional(run.slot.map(ISO8601.string(fromSeconds:))),
            .optional(run.startedAt.map(ISO8601.string(fromMilliseconds:))), .text(ISO8601.string(fromMilliseconds: run.finishedAt)),
            .optional(run.latenessMs), .text(run.outcome), .optional(run.exitCode.map(Int64.init)),
            .optional(run.signal.map(Int64.init)), .integer(Int64(run.attempt)), .text(run.trigger), .optional(run.message),
        ]
    }

    /// The columns runs and commands change, in the order of `updateRunColumns` and the upsert's last columns.
    private func runColumns(for task: TaskState, running: Set<TaskName>) -> [SQLiteValue] {
        [
            .optional(task.lastStartedAt.map(ISO8601.string(fromMilliseconds:))), .optional(nextExecution(of: task).map(ISO8601.string(fromSeconds:))),
            .bool(running.contains(task.definition.name)), .bool(task.isQueued), .bool(task.isError), .bool(task.isDisabled), .text(task.errorText),
            .text(ISO8601.string(fromMilliseconds: task.updatedAt)),
        ]
    }

    private func nextExecution(of task: TaskState) -> Int64? {
        // A task in error or disabled does not run until resolved or enabled: it has no next execution.
        guard !task.isDisabled, !task.isError else { return nil }
        let calculator = ScheduleCalculator(spec: task.definition.schedule, defaultTimeZone: defaultTimeZone, anchor: task.anchor)
        return calculator.nextSlot(after: task.lastSlot ?? task.anchor)
    }

    /// A whole row, in the upsert's column order: what the definition decides, then ``runColumns(for:running:)``.
    private func row(for task: TaskState, running: Set<TaskName>) -> [SQLiteValue] {
        let d = task.definition
        let scheduleInfo = (try? String(decoding: StateLoader.snapshotEncoder.encode(d.schedule), as: UTF8.self)) ?? "{}"
        let policy = (try? String(decoding: StateLoader.snapshotEncoder.encode(d.policy), as: UTF8.self)) ?? "{}"
        return [
            .optional(task.number.map(Int64.init)), .text(task.taskID), .text(d.name.rawValue), .text(d.description), .text(d.schedule.schedule.displayString), .text(scheduleInfo),
            .text(workspace.taskLogFile(d.name)), .text(d.name.slug), .text(d.schedule.schedule.typeName), .text(d.executableDescription), .text(policy),
            .text(ISO8601.string(fromMilliseconds: task.createdAt)),
        ] + runColumns(for: task, running: running)
    }
}
