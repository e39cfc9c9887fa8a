import Foundation

/// The query view in PostgreSQL (`DB_URL=postgres://…`), in the tables of the URL's database (its
/// `search_path`, normally `public`), so `psql "$DB_URL" -c 'SELECT "Name" FROM task_models'` reads it.
///
/// Same tables and values as SQLite. Column names are quoted (`"Name"`): PostgreSQL folds unquoted names to
/// lower case, and the seed's are CamelCase. Every statement is a round trip, so a batch of rows is one
/// statement per kind: each column travels as one array parameter and `unnest` turns the arrays back into rows
/// (`UPDATE … FROM unnest($1::text[], …)`, `INSERT … SELECT * FROM unnest(…) ON CONFLICT …`).
public final class PostgresViewDatabase: ViewDatabase {
    public let connection: PostgresConnection
    public var location: String { connection.name }
    public let node: String
    static let tables = ["meta", "task_models", "runs", "applied_lsn"]
    /// The `applied_lsn` this connection last committed, and its ``PostgresConnection/reconnections`` then: see
    /// ``transaction(_:)``.
    private var committedLSN: UInt64?
    private var writtenLSN: UInt64?
    private var sessionsSeen = 0

    private init(connection: PostgresConnection, node: String) {
        self.connection = connection
        self.node = node
    }

    /// Connects, for reading; nil when the database has no view yet.
    public static func openForReading(url: URL, node: String = Settings.hostName()) throws -> PostgresViewDatabase? {
        let database = PostgresViewDatabase(connection: try connect(url), node: node)
        let exists = try database.connection.query("SELECT to_regclass('task_models') IS NOT NULL").first?.first == "t"
        return exists ? database : nil
    }

    /// Connects and makes sure the view has this keiji's schema: created when missing, dropped and created
    /// again when it is keiji's view of another schema version. Returns whether it was created afresh (and so
    /// must be rebuilt).
    /// - Throws: when the database cannot be reached or used (rights), or holds tables of these names that
    ///   keiji did not create (it never drops those: give keiji a database of its own).
    public static func openOrReset(url: URL, node: String = Settings.hostName()) throws -> (PostgresViewDatabase, fresh: Bool) {
        let database = PostgresViewDatabase(connection: try connect(url), node: node)
        let fresh = try database.connection.transaction { try database.prepareSchema() }
        return (database, fresh)
    }

    /// Checks that ``openOrReset(url:)`` would succeed, and changes nothing: the same statements run in a
    /// transaction that is rolled back (PostgreSQL's DDL is transactional), and an existing view must be
    /// writable. For `keiji system --start`, before any service starts.
    public static func checkAccess(url: URL) throws {
        let database = PostgresViewDatabase(connection: try connect(url), node: "")
        try database.connection.execute("BEGIN")
        defer { try? database.connection.execute("ROLLBACK") }
        guard try !database.prepareSchema() else { return }
        let writable = try database.connection.query(
            "SELECT bool_and(has_table_privilege(t, 'SELECT, INSERT, UPDATE, DELETE')) FROM unnest($1::text[]) AS t",
            [PostgresConnection.arrayLiteral(tables)])
        guard writable.first?.first == "t" else {
            throw KeijiError(.database, "\(database.location): permission denied: the role cannot write the view's tables (\(tables.joined(separator: ", ")))")
        }
    }

    /// Creates the schema when missing, replaces keiji's view of another version; true when it did either.
    private func prepareSchema() throws -> Bool {
        switch try schemaState() {
        case .current:
            return false
        case .missing:
            try createSchema()
        case .otherVersion:
            try connection.execute("DROP TABLE IF EXISTS \(Self.tables.joined(separator: ", "))")
            try createSchema()
        case .foreign(let names):
            throw KeijiError(.database, "\(location): the database already has \(names.joined(separator: ", ")), which keiji did not create; "
                             + "give keiji a database of its own (keiji never drops tables it did not create)")
        }
        return true
    }

    /// The view's commits do not wait for the server's WAL flush (`synchronous_commit=off`, kept across
    /// reconnections). The view is derived from the journal, as SQLite's unsynced view is: a server crash loses
    /// whole transactions, the newest ones, and their `applied_lsn` with them, so the next start catches the rows
    /// up from the journal, and a scheduler that keeps running finds the loss in its next transaction. Each
    /// flush waiting for a flush of the server's WAL put that disk's sync beside the journal's on the firing path.
    /// (A CLI call's shared session commits synchronously: ``SharedPostgresSession``.)
    private static func connect(_ url: URL) throws -> PostgresConnection {
        try PostgresConnection.open(url: url, name: Settings.Database.postgres(url).description, options: "-c synchronous_commit=off")
    }

    private enum SchemaState {
        case current, missing, otherVersion
        /// Tables of the view's names without keiji's `meta` row.
        case foreign([String])
    }

    private func schemaState() throws -> SchemaState {
        let present = try connection.query(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(quote_ident(t)) IS NOT NULL ORDER BY t",
            [PostgresConnection.arrayLiteral(Self.tables)]
        ).compactMap { $0.first ?? nil }
        if present.isEmpty { return .missing }
        guard present.contains("meta"),
            let version = try connection.query("SELECT value FROM meta WHERE key = 'schema_version'").first?.first ?? nil
        else { return .foreign(present) }
        return version == String(QueryView.schemaVersion) && present.count == Self.tables.count ? .current : .otherVersion
    }

    private func createSchema() throws {
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta (key, value) VALUES ('schema_version', '\(QueryView.schemaVersion)') ON CONFLICT (key) DO NOTHING;
            CREATE TABLE IF NOT EXISTS task_models (
                "ID" BIGINT PRIMARY KEY,
                "TaskId" TEXT NOT NULL UNIQUE,
                "Name" TEXT NOT NULL UNIQUE,
                "Description" TEXT NOT NULL,
                "Schedule" TEXT NOT NULL,
                "ScheduleInfo" TEXT NOT NULL,
                "LastExecutionTime" TEXT,
                "NextExecutionTime" TEXT,
                "LogPath" TEXT NOT NULL,
                "Slug" TEXT NOT NULL UNIQUE,
                "Type" TEXT NOT NULL,
                "Executable" TEXT NOT NULL,
                "IsRunning" INTEGER NOT NULL DEFAULT 0,
                "IsQueued" INTEGER NOT NULL DEFAULT 0,
                "IsError" INTEGER NOT NULL DEFAULT 0,
                "IsDisabled" INTEGER NOT NULL DEFAULT 0,
                "ErrorTxt" TEXT NOT NULL DEFAULT '',
                "Policy" TEXT NOT NULL DEFAULT '{}',
                "CreatedAt" TEXT NOT NULL,
                "UpdatedAt" TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS runs (
                "RunId" TEXT NOT NULL,
                "TaskName" TEXT NOT NULL,
                "SlotTime" TEXT,
                "StartTime" TEXT,
                "EndTime" TEXT NOT NULL,
                "LatenessMs" BIGINT,
                "Outcome" TEXT NOT NULL,
                "ExitCode" INTEGER,
                "Signal" INTEGER,
                "Attempt" INTEGER NOT NULL,
                "Trigger" TEXT NOT NULL,
                "Message" TEXT,
                "Node" TEXT NOT NULL,
                "DurationMs" BIGINT,
                "Seq" BIGINT GENERATED ALWAYS AS IDENTITY
            );
            CREATE UNIQUE INDEX IF NOT EXISTS runs_by_task ON runs (\(RunRow.keyColumns.map(Self.quoted).joined(separator: ", ")));
            CREATE INDEX IF NOT EXISTS runs_in_order ON runs ("TaskName", "Seq");
            CREATE TABLE IF NOT EXISTS applied_lsn (node TEXT PRIMARY KEY, lsn BIGINT NOT NULL);
            """)
    }

    // MARK: - Dialect

    static func quoted(_ column: String) -> String { "\"\(column)\"" }

    /// `unnest($first::bigint[], $2::text[], …) AS alias("A", "B", …)`: the rows of a batch, a column per parameter.
    static func unnest(_ columns: [ViewColumn], from first: Int = 1, as alias: String) -> String {
        let arrays = columns.enumerated().map { "$\(first + $0.offset)::\($0.element.kind == .integer ? "bigint" : "text")[]" }
        return "unnest(\(arrays.joined(separator: ", "))) AS \(alias)(\(columns.map { quoted($0.name) }.joined(separator: ", ")))"
    }

    /// One array literal per column of `rows` (each row's values in column order).
    static func columnArrays(_ rows: [[DatabaseValue]], count: Int) -> [String?] {
        (0..<count).map { column in PostgresConnection.arrayLiteral(rows.map { $0[column].text }) }
    }

    // MARK: - Writing

    /// Runs `body` in one transaction. In a session the connection made again (the server dropped the last one,
    /// perhaps by restarting) it first checks that `applied_lsn` is still what this connection last committed:
    /// if the server lost those unsynced commits (see ``connect(_:)``), it throws ``ViewCommitsLost`` and the
    /// writer rewrites every row from its state. A writer that went on would leave the lost rows stale for good.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        writtenLSN = nil
        let result = try connection.transaction {
            if connection.reconnections != sessionsSeen {
                sessionsSeen = connection.reconnections
                if let committed = committedLSN, try appliedLSN() < committed {
                    committedLSN = nil
                    throw ViewCommitsLost(location: location)
                }
            }
            return try body()
        }
        if let writtenLSN { committedLSN = writtenLSN }
        return result
    }

    public func appliedLSN() throws -> UInt64 {
        UInt64(try connection.query("SELECT lsn FROM applied_lsn WHERE node = $1", [node]).first?.first?.flatMap { $0 } ?? "0") ?? 0
    }

    public func metaValue(_ key: String) throws -> String? {
        try connection.query("SELECT value FROM meta WHERE key = $1", [key]).first?.first ?? nil
    }

    public func setMetaValue(_ key: String, to value: String) throws {
        try connection.query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])
    }

    public func setAppliedLSN(_ lsn: UInt64) throws {
        try connection.query("INSERT INTO applied_lsn (node, lsn) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET lsn = excluded.lsn", [node, String(lsn)])
        writtenLSN = lsn
    }

    public func taskNames() throws -> [String] {
        try connection.query(#"SELECT "Name" FROM task_models"#).compactMap { $0.first ?? nil }
    }

    /// This node's rows only: the other nodes' runs are theirs, and `task_models` is shared (the rebuild upserts
    /// this node's tasks; a delete removes a task's row when it applies). Deleting every task's row emptied the
    /// view on every node until each wrote again, and a node whose journal had no tasks yet wiped it for good.
    public var isShared: Bool { true }

    public func deleteAllRows() throws {
        try connection.query(#"DELETE FROM runs WHERE "Node" = $1"#, [node])
    }

    public func deleteTasks(named names: [String]) throws {
        guard !names.isEmpty else { return }
        try connection.query(#"""
            WITH gone AS (DELETE FROM runs WHERE "TaskName" = ANY($1::text[]))
            DELETE FROM task_models WHERE "Name" = ANY($1::text[])
            """#, [PostgresConnection.arrayLiteral(names)])
    }

    public func updateRunValues(_ rows: [TaskRunValues]) throws -> Set<String> {
        guard !rows.isEmpty else { return [] }
        let columns = [ViewColumn("Name")] + TaskModelRow.runColumns
        let assignments = TaskModelRow.runColumns.map { "\(Self.quoted($0.name)) = u.\(Self.quoted($0.name))" }
        let updated = try connection.query("""
            UPDATE task_models AS t SET \(assignments.joined(separator: ", ")) FROM \(Self.unnest(columns, as: "u"))
            WHERE t."Name" = u."Name" RETURNING t."Name"
            """, Self.columnArrays(rows.map { [.text($0.name)] + $0.values }, count: columns.count))
        return Set(rows.map(\.name)).subtracting(updated.compactMap { $0.first ?? nil })
    }

    public func upsertTasks(_ rows: [TaskModelRow]) throws {
        guard !rows.isEmpty else { return }
        let numbered = rows.filter { $0.number != nil }
        if !numbered.isEmpty {
            try connection.query(#"""
                DELETE FROM task_models AS t USING unnest($1::bigint[], $2::text[]) AS f(id, name) WHERE t."ID" = f.id AND t."Name" <> f.name
                """#, [PostgresConnection.arrayLiteral(numbered.map { $0.number.map(String.init) }),
                       PostgresConnection.arrayLiteral(numbered.map(\.name))])
        }
        let columns = TaskModelRow.columns
        let updates = columns.map(\.name).filter { !TaskModelRow.keptOnUpdate.contains($0) }.map { "\(Self.quoted($0)) = excluded.\(Self.quoted($0))" }
        try connection.query("""
            INSERT INTO task_models (\(columns.map { Self.quoted($0.name) }.joined(separator: ", ")))
            SELECT * FROM \(Self.unnest(columns, as: "u"))
            ON CONFLICT ("Name") DO UPDATE SET \(updates.joined(separator: ", "))
            """, Self.columnArrays(rows.map(\.values), count: columns.count))
    }

    public func insertRuns(_ rows: [RunRow]) throws {
        guard !rows.isEmpty else { return }
        let columns = RunRow.columns
        try connection.query("""
            INSERT INTO runs (\(columns.map { Self.quoted($0.name) }.joined(separator: ", ")))
            SELECT * FROM \(Self.unnest(columns, as: "u"))
            ON CONFLICT (\(RunRow.keyColumns.map(Self.quoted).joined(separator: ", "))) DO NOTHING
            """, Self.columnArrays(rows.map(\.values), count: columns.count))
    }

    public func deleteRuns(of names: [String]) throws {
        guard !names.isEmpty else { return }
        try connection.query(#"DELETE FROM runs WHERE "TaskName" = ANY($1::text[]) AND "Node" = $2"#,
                             [PostgresConnection.arrayLiteral(names), node])
    }

    /// By `Seq`, the order the rows reached the view: the order each node made its runs, and between nodes the order
    /// they were flushed (within a flush interval of when they ended), whatever any node's wall clock said.
    public func trimRuns(of names: [String], keeping limit: Int) throws {
        guard !names.isEmpty else { return }
        try connection.query(#"""
            DELETE FROM runs AS r USING (
                SELECT ctid AS row, row_number() OVER (PARTITION BY "TaskName" ORDER BY "Seq" DESC) AS n
                FROM runs WHERE "TaskName" = ANY($1::text[])
            ) AS o WHERE r.ctid = o.row AND o.n > $2
            """#, [PostgresConnection.arrayLiteral(names), String(limit)])
    }

    // MARK: - Reading

    public func taskModels(_ columns: [String], where filter: TaskModelFilter) throws -> [[String?]] {
        let select = "SELECT \(columns.map(Self.quoted).joined(separator: ", ")) FROM task_models"
        return switch filter {
        // `COLLATE "C"`: by code point, as SQLite orders, whatever the database's locale.
        case .all: try connection.query(select + #" ORDER BY "Name" COLLATE "C""#)
        case .name(let name): try connection.query(select + #" WHERE "Name" = $1"#, [name])
        case .slug(let slug): try connection.query(select + #" WHERE "Slug" = $1"#, [slug])
        }
    }

    public func tasksWithLatestRun(_ taskColumns: [String], runColumns: [String]) throws -> [[String?]] {
        let columns = taskColumns.map { "t.\(Self.quoted($0))" } + runColumns.map { "r.\(Self.quoted($0))" }
        return try connection.query("""
            SELECT \(columns.joined(separator: ", ")) FROM task_models t
            LEFT JOIN LATERAL (SELECT * FROM runs WHERE "TaskName" = t."Name" ORDER BY "Seq" DESC LIMIT 1) r ON true
            ORDER BY t."Name" COLLATE "C"
            """)
    }

    public func runs(_ columns: [String], of task: String, limit: Int) throws -> [[String?]] {
        try connection.query("""
            SELECT \(columns.map(Self.quoted).joined(separator: ", ")) FROM runs WHERE "TaskName" = $1 ORDER BY "Seq" DESC LIMIT $2
            """, [task, String(limit)])
    }
}

/// The server no longer has the view's newest commits (made without waiting for its WAL flush, then lost when
/// it restarted): the view must be written again from the state.
public struct ViewCommitsLost: Error, CustomStringConvertible {
    public let location: String
    public var description: String {
        "\(location): the database lost the view's newest commits (it restarted?); every row is written again from the state"
    }
}
