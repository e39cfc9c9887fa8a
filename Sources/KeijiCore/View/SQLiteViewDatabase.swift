import Foundation

/// The query view in SQLite (`~/.keiji/db/keiji.db`, WAL): the default (`DB_URL=default`). Local, so a
/// statement per row costs little; statements are prepared once per batch.
public final class SQLiteViewDatabase: ViewDatabase {
    public let connection: SQLiteDatabase
    public var location: String { connection.path }
    public let node: String

    /// Opens the view read-write, creating the schema. Throws if the file cannot be used.
    ///
    /// Its commits are not synced (`synchronous=NORMAL`: a power cut may take the last ones back, never damage the
    /// file, and a view behind the journal is caught up from it), and its close leaves the WAL for the next
    /// connection: the last connection's close used to checkpoint it (syncing the WAL and the file) and remove it,
    /// so that every offline CLI command made four syncs for the view (0.2–0.5 ms each on this machine's disk).
    /// A connection that opens reads the WAL's frames back and cannot tell which a checkpoint has copied already,
    /// so SQLite's own checkpoints never restart a WAL that short-lived connections share, and it would grow by
    /// each command's pages: once past ``walCheckpointBytes`` it is copied and emptied here, at an open.
    public init(path: String, node: String = Settings.hostName()) throws {
        connection = try SQLiteDatabase(path: path)
        self.node = node
        // Before anything is set or created in it: created over another program's tables, the schema kept theirs
        // where the names met (`CREATE TABLE IF NOT EXISTS`), and the file passed as a current view.
        let tables = try Self.tableNames(connection)
        if !tables.isEmpty, !tables.contains("meta") { throw Self.notAView(path) }
        try connection.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")
        try connection.leaveWALAtClose()
        if FileSystem.size(of: path + "-wal").map({ $0 > Self.walCheckpointBytes }) == true {
            // A checkpoint that fails leaves a long WAL, not a view to set aside: the open goes on.
            try? connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
        try createSchema()
    }

    /// The WAL size past which an open checkpoints it: about a hundred offline commands' pages (a create writes
    /// 4–6), small enough that reading it back at each open costs little.
    static let walCheckpointBytes = 512 << 10

    /// Opens an existing view for reading only (no schema is created).
    public init(readingFrom path: String, node: String = Settings.hostName()) throws {
        connection = try SQLiteDatabase(path: path, readOnly: true)
        self.node = node
        // A view of an older schema is read as far as it goes (its next write rebuilds it); a file without keiji's
        // schema at all is damage to repair, not a query's "no such table" to print.
        guard try Self.tableNames(connection).contains("meta") else { throw Self.notAView(path) }
    }

    /// The file's tables. One without keiji's `meta` is not a view keiji made: an empty file, or the database of
    /// another program at this path (the Go keiji kept its own `task_models` table here). The schema is created in
    /// one transaction, so a reader sees all of it or none; a read that fails (busy, I/O) throws as itself.
    private static func tableNames(_ connection: SQLiteDatabase) throws -> Set<String> {
        Set(try connection.rows("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.first ?? nil })
    }

    private static func notAView(_ path: String) -> KeijiError {
        KeijiError(.databaseDamaged, "\(path) is not a keiji query view (an empty file, or another program's database such as the Go keiji's)")
    }

    /// Opens the view at `path`, or, when it is missing, damaged, of another schema or left unsynced by an
    /// operating-system crash (see ``beginUnsyncedWrites(bootID:)``), moves it aside (as `.damaged`) and creates
    /// a new one. Returns whether it was created afresh (and so must be rebuilt).
    /// - Parameter verifying: whether damage is looked for page by page (`PRAGMA quick_check`), which reads the
    ///   whole file: 60 ms for a view of 10,000 tasks. The scheduler does at its start; a CLI command writing
    ///   offline does not, and rebuilds the view if its writes meet damage (``OfflineCommands``).
    public static func openOrReset(path: String, node: String = Settings.hostName(),
                                   bootID: String = UnsyncedViewMarker.currentBootID(),
                                   verifying: Bool = true) throws -> (SQLiteViewDatabase, fresh: Bool) {
        let marker = UnsyncedViewMarker(viewPath: path)
        let lostToACrash = marker.bootID().map { $0 != bootID } ?? false
        // An empty file is not a view either (SQLite would make one in it, and it would pass as current).
        if !lostToACrash, FileSystem.size(of: path).map({ $0 > 0 }) == true, let database = try? SQLiteViewDatabase(path: path, node: node),
            database.hasCurrentSchema(verifying: verifying)
        {
            return (database, false)
        }
        // The latest set-aside file is kept, an older one goes: left, it kept this one from moving, and a file that is
        // not a view then failed every open.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + ".damaged" + suffix) }
        for suffix in ["", "-wal", "-shm"] where FileSystem.exists(path + suffix) {
            try? FileManager.default.moveItem(atPath: path + suffix, toPath: path + ".damaged" + suffix)
        }
        try marker.remove()
        return (try SQLiteViewDatabase(path: path, node: node), true)
    }

    /// From now on this connection's commits are not synced (`synchronous=OFF`): the view is derived from the
    /// journal, which is. Under load SQLite's syncs (each WAL checkpoint flushes megabytes) held up the
    /// journal's `fdatasync` on the same disk: at 10,000 firings a second, p99 start lateness 12–46 ms, and
    /// 1.6–2.6 ms without them. A process crash loses nothing (the kernel has the pages); an operating-system
    /// crash or power cut may leave the file damaged in ways no check is sure to find, so a marker naming this
    /// boot is made durable first, and a view found with another boot's marker is rebuilt from the journal.
    public func beginUnsyncedWrites() throws { try beginUnsyncedWrites(bootID: UnsyncedViewMarker.currentBootID()) }

    func beginUnsyncedWrites(bootID: String) throws {
        try UnsyncedViewMarker(viewPath: location).write(bootID: bootID)
        try connection.execute("PRAGMA synchronous=OFF")
    }

    /// Syncs everything written (a full checkpoint into the database file, synced) and removes the marker: the
    /// view survives a reboot. A scheduler's clean stop does this.
    public func endUnsyncedWrites() throws {
        try connection.execute("PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(TRUNCATE)")
        try UnsyncedViewMarker(viewPath: location).remove()
    }

    func hasCurrentSchema(verifying: Bool) -> Bool {
        if verifying { guard let check = try? connection.rows("PRAGMA quick_check"), check.first?.first == "ok" else { return false } }
        guard let version = try? connection.rows("SELECT value FROM meta WHERE key = 'schema_version'"),
            version.first?.first == String(QueryView.schemaVersion)
        else { return false }
        return true
    }

    /// In one transaction: a reader sees the whole schema or none of it (``tableNames(_:)``).
    private func createSchema() throws {
        try connection.execute("""
            BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '\(QueryView.schemaVersion)');
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
                RunId TEXT NOT NULL,
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
                Message TEXT,
                Node TEXT NOT NULL,
                DurationMs INTEGER
            );
            CREATE INDEX IF NOT EXISTS runs_by_task ON runs (TaskName);
            CREATE TABLE IF NOT EXISTS applied_lsn (id INTEGER PRIMARY KEY CHECK (id = 1), lsn INTEGER NOT NULL);
            INSERT OR IGNORE INTO applied_lsn (id, lsn) VALUES (1, 0);
            COMMIT;
            """)
    }

    public func transaction<T>(_ body: () throws -> T) throws -> T { try connection.transaction(body) }

    public func appliedLSN() throws -> UInt64 {
        UInt64(try connection.rows("SELECT lsn FROM applied_lsn WHERE id = 1").first?.first??.description ?? "0") ?? 0
    }

    public func setAppliedLSN(_ lsn: UInt64) throws {
        try connection.prepare("UPDATE applied_lsn SET lsn = ? WHERE id = 1").run([.integer(Int64(lsn))])
    }

    public func metaValue(_ key: String) throws -> String? {
        try connection.rows("SELECT value FROM meta WHERE key = ?", [.text(key)]).first?.first ?? nil
    }

    public func setMetaValue(_ key: String, to value: String) throws {
        try connection.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run([.text(key), .text(value)])
    }

    public func taskNames() throws -> [String] {
        try connection.rows("SELECT Name FROM task_models").compactMap { $0.first ?? nil }
    }

    public var isShared: Bool { false }

    public func deleteAllRows() throws {
        try connection.execute("DELETE FROM task_models; DELETE FROM runs;")
    }

    public func deleteTasks(named names: [String]) throws {
        guard !names.isEmpty else { return }
        let deleteTask = try connection.prepare("DELETE FROM task_models WHERE Name = ?")
        for name in names { try deleteTask.run([.text(name)]) }
        try deleteRuns(of: names)
    }

    public func updateRunValues(_ rows: [TaskRunValues]) throws -> Set<String> {
        guard !rows.isEmpty else { return [] }
        let assignments = TaskModelRow.runColumns.map { "\($0.name) = ?" }.joined(separator: ", ")
        let update = try connection.prepare("UPDATE task_models SET \(assignments) WHERE Name = ?")
        var missing: Set<String> = []
        for row in rows {
            try update.run(row.values + [.text(row.name)])
            if connection.changes != 1 { missing.insert(row.name) }
        }
        return missing
    }

    public func upsertTasks(_ rows: [TaskModelRow]) throws {
        guard !rows.isEmpty else { return }
        let columns = TaskModelRow.columns.map(\.name)
        let updates = columns.filter { !TaskModelRow.keptOnUpdate.contains($0) }.map { "\($0) = excluded.\($0)" }
        let upsert = try connection.prepare("""
            INSERT INTO task_models (\(columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
            ON CONFLICT(Name) DO UPDATE SET \(updates.joined(separator: ", "))
            """)
        let freeNumber = try connection.prepare("DELETE FROM task_models WHERE ID = ? AND Name <> ?")
        for row in rows {
            if let number = row.number { try freeNumber.run([.integer(number), .text(row.name)]) }
            try upsert.run(row.values)
        }
    }

    /// Plain inserts into a table whose only index is `runs_by_task`: a run's row goes into two b-trees, the table
    /// (appended to) and the index (a page per task). A unique `RunId` key was a third, written at random pages (run
    /// IDs are random): in a model of a flush of 2,000 tasks it doubled the WAL written (9.0 against 4.4 MB) and
    /// added ~30 % to SQLite's CPU; in `keiji-bench scheduler` the inserts went from 12 % to 9 % of all samples.
    public func insertRuns(_ rows: [RunRow]) throws {
        guard !rows.isEmpty else { return }
        let columns = RunRow.columns.map(\.name)
        let insert = try connection.prepare("""
            INSERT INTO runs (\(columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))
            """)
        for row in rows { try insert.run(row.values) }
    }

    public func deleteRuns(of names: [String]) throws {
        guard !names.isEmpty else { return }
        let delete = try connection.prepare("DELETE FROM runs WHERE TaskName = ?")
        for name in names { try delete.run([.text(name)]) }
    }

    /// Deletes each task's runs older than its `limit`-th newest, in rowid order (the order they were written, which is
    /// the order the state made them: a rebuild writes each task's history in that order too; their `EndTime`s go
    /// back when the wall clock steps back). The rowid is in the `runs_by_task` index, so the row at the boundary is
    /// found without reading the table, and the delete is a range of that index. (`RunId NOT IN (… LIMIT n)` read each run's row for its RunId: 2.5× the CPU, and
    /// at 10,000 runs a second the trim was most of the view's cost.) A task with `limit` runs or fewer has no
    /// boundary row: the comparison with NULL deletes nothing.
    public func trimRuns(of names: [String], keeping limit: Int) throws {
        guard !names.isEmpty else { return }
        let trim = try connection.prepare("""
            DELETE FROM runs WHERE TaskName = ?1 AND rowid <
                (SELECT rowid FROM runs WHERE TaskName = ?1 ORDER BY rowid DESC LIMIT 1 OFFSET \(max(0, limit - 1)))
            """)
        for name in names { try trim.run([.text(name)]) }
    }

    /// Empties the connection's page cache (up to SQLite's default 2 MB, resident otherwise for the scheduler's
    /// life: ~200 bytes a task of an idle 10,000-task view after its rebuild); the cache fills again as needed.
    public func releaseCachedPages() { connection.releaseCachedPages() }

    public func taskModels(_ columns: [String], where filter: TaskModelFilter) throws -> [[String?]] {
        let select = "SELECT \(columns.joined(separator: ", ")) FROM task_models"
        return switch filter {
        case .all: try connection.rows(select + " ORDER BY Name")
        case .name(let name): try connection.rows(select + " WHERE Name = ?", [.text(name)])
        case .slug(let slug): try connection.rows(select + " WHERE Slug = ?", [.text(slug)])
        }
    }

    public func tasksWithLatestRun(_ taskColumns: [String], runColumns: [String]) throws -> [[String?]] {
        let columns = taskColumns.map { "t.\($0)" } + runColumns.map { "r.\($0)" }
        return try connection.rows("""
            SELECT \(columns.joined(separator: ", ")) FROM task_models t
            LEFT JOIN runs r ON r.rowid = (SELECT rowid FROM runs WHERE TaskName = t.Name ORDER BY rowid DESC LIMIT 1)
            ORDER BY t.Name
            """)
    }

    public func runs(_ columns: [String], of task: String, limit: Int) throws -> [[String?]] {
        try connection.rows("SELECT \(columns.joined(separator: ", ")) FROM runs WHERE TaskName = ? ORDER BY rowid DESC LIMIT ?",
                            [.text(task), .integer(Int64(limit))])
    }
}
