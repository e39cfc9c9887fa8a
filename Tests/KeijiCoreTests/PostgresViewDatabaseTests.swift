import Foundation
import Testing

@testable import KeijiCore

/// The query view's PostgreSQL back end against a real server: the same rows as SQLite's from the same
/// history, its batched statements, its schema handling, and libpq's text formats.
@Suite(.enabled(if: TestPostgres.available, TestPostgres.skipReason))
struct PostgresViewDatabaseTests {
    /// What most tests here start from: a temporary home, and a new database holding a new view (UTC).
    struct FreshView {
        let home = TemporaryHome()
        let url: URL
        let view: QueryView
        private let drop: () -> Void

        init() throws {
            (url, drop) = try TestPostgres.makeDatabase()
            do {
                view = try QueryView.openOrReset(.postgres(url), workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!).0
            } catch {
                drop()
                home.remove()
                throw error
            }
        }

        /// Drops the database and removes the home.
        func remove() {
            drop()
            home.remove()
        }
    }

    func dump(_ view: QueryView) throws -> [[String?]] {
        let connection = (view.database as! PostgresViewDatabase).connection
        func quoted(_ columns: String) -> String { columns.split(separator: ", ").map { "\"\($0)\"" }.joined(separator: ", ") }
        return try connection.query(#"SELECT \#(quoted(QueryViewTests.taskColumns)) FROM task_models ORDER BY "Name" COLLATE "C""#)
            + connection.query(#"SELECT \#(quoted(QueryViewTests.runColumns)) FROM runs ORDER BY "RunId" COLLATE "C", "TaskName" COLLATE "C", "EndTime""#)
            + connection.query("SELECT lsn FROM applied_lsn")
    }

    /// ``sampleHistory()`` and then more runs of alpha than a task keeps, so each flush also trims its history.
    func historyPastTheRunLimit() -> [JournalEntry] {
        var entries = sampleHistory()
        var t = entries.last!.at
        for i in 0..<(SchedulerState.recentRunLimit / 2) {
            t += 1000
            let slot = 1_795_001_000 + Int64(i) * 10
            entries.append(JournalEntry(at: t, .runStarted(RunStart(runID: "late\(i)", task: name("alpha"), slot: slot, attempt: 1, trigger: .schedule))))
            t += 1000
            entries.append(JournalEntry(at: t, .runFinished(RunEnd(runID: "late\(i)", task: name("alpha"), outcome: .succeeded, exitCode: 0, signal: nil,
                                                                   durationMs: 5, latenessMs: 2, final: true, message: nil))))
        }
        return entries
    }

    /// The scheduler's path (narrow updates and new runs, batched), a rebuild, and SQLite, all agree row for row.
    @Test func aPostgresViewHoldsTheSameRowsAsTheSQLiteOne() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let zone = TimeZone(identifier: "UTC")!
        let sqlite = try QueryView(sqlite: home.path + "/keiji.db", workspace: home.workspace, defaultTimeZone: zone)
        let (live, fresh) = try QueryView.openOrReset(.postgres(url), workspace: home.workspace, defaultTimeZone: zone)
        #expect(fresh, "a database without the view gets one, to be built")
        var state = SchedulerState()
        for (index, entry) in historyPastTheRunLimit().enumerated() {
            Reducer.apply(entry, lsn: UInt64(index + 1), to: &state)
            let touched = Set([entry.taskName].compactMap { $0 })
            try sqlite.apply(touched: touched, state: state)
            try applyAsTheScheduler(entry, state: state, to: live)
            #expect(try dump(live) == QueryViewTests().dump(sqlite), "after \(entry.typeName) at LSN \(index + 1)")
        }
        let expected = try QueryViewTests().dump(sqlite)
        #expect(expected.count > 10)
        try live.rebuild(from: state)
        #expect(try dump(live) == expected, "a rebuild writes what the live path wrote")
        let (reopened, again) = try QueryView.openOrReset(.postgres(url), workspace: home.workspace, defaultTimeZone: zone)
        #expect(!again, "the view is kept between starts")
        #expect(try reopened.appliedLSN() == state.lastLSN)

        // The reads of `task --list` and `task --runs` answer the same in both dialects.
        let last = SchedulerState.recentRunLimit / 2 - 1
        let (taskColumns, runColumns) = (["Name", "NextExecutionTime", "IsDisabled"], ["RunId", "Outcome", "ExitCode", "Signal"])
        let latest = try sqlite.database.tasksWithLatestRun(taskColumns, runColumns: runColumns)
        #expect(latest.contains { $0[0] == "alpha" && $0[3] == "late\(last)" && $0[4] == "succeeded" && $0[5] == "0" }, "\(latest)")
        #expect(try live.database.tasksWithLatestRun(taskColumns, runColumns: runColumns) == latest)
        let history = try sqlite.database.runs(RunRow.columns.map(\.name), of: "alpha", limit: 3)
        #expect(history.map { $0[0] } == [last, last - 1, last - 2].map { "late\($0)" }, "newest first")
        #expect(try live.database.runs(RunRow.columns.map(\.name), of: "alpha", limit: 3) == history)
    }

    @Test func everyEntryOfATasksHistoryIsARow() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (liveURL, dropLive) = try TestPostgres.makeDatabase()
        defer { dropLive() }
        let (rebuiltURL, dropRebuilt) = try TestPostgres.makeDatabase()
        defer { dropRebuilt() }
        let zone = TimeZone(identifier: "UTC")!
        try QueryViewTests.checkEveryEntryOfATasksHistoryIsARow(
            live: QueryView.openOrReset(.postgres(liveURL), workspace: home.workspace, defaultTimeZone: zone).0,
            rebuilt: QueryView.openOrReset(.postgres(rebuiltURL), workspace: home.workspace, defaultTimeZone: zone).0,
            rows: { view, task in
                try (view.database as! PostgresViewDatabase).connection.query(
                    #"SELECT "RunId", "EndTime", "Outcome" FROM runs WHERE "TaskName" = $1 ORDER BY "Seq""#, [task])
            })
    }

    @Test func runsAfterTheClockSteppedBackAreTheNewest() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (liveURL, dropLive) = try TestPostgres.makeDatabase()
        defer { dropLive() }
        let (rebuiltURL, dropRebuilt) = try TestPostgres.makeDatabase()
        defer { dropRebuilt() }
        let zone = TimeZone(identifier: "UTC")!
        try QueryViewTests.checkRunsAfterTheClockSteppedBackAreTheNewest(
            live: QueryView.openOrReset(.postgres(liveURL), workspace: home.workspace, defaultTimeZone: zone).0,
            rebuilt: QueryView.openOrReset(.postgres(rebuiltURL), workspace: home.workspace, defaultTimeZone: zone).0)
    }

    /// A commit can succeed with its reply lost; the flush is then made again, and inserts nothing twice.
    @Test func runsInsertedAgainAreNotDuplicated() throws {
        let fresh = try FreshView()
        defer { fresh.remove() }
        let view = fresh.view
        var state = SchedulerState()
        for (index, entry) in historyPastTheRunLimit().enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        try view.rebuild(from: state)
        let before = try dump(view)
        let rows = state.tasks.flatMap { name, task in task.recentRuns.map { RunRow($0, task: name, node: view.database.node) } }
        #expect(rows.count > 10)
        try view.database.transaction { try view.database.insertRuns(rows) }
        #expect(try dump(view) == before)
    }

    /// Nodes of a cluster share `runs`: a node writing its tasks' whole histories again (its catch-up at a start)
    /// replaces its own rows of them, never another node's.
    @Test func aNodesCatchUpReplacesOnlyItsOwnRuns() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let zone = TimeZone(identifier: "UTC")!
        let (one, _) = try QueryView.openOrReset(.postgres(url, node: "node-1"), workspace: home.workspace, defaultTimeZone: zone)
        let (two, _) = try QueryView.openOrReset(.postgres(url, node: "node-2"), workspace: home.workspace, defaultTimeZone: zone)
        func state(runs ids: [String], at first: Int64) -> SchedulerState {
            var state = SchedulerState()
            var entries = [JournalEntry(at: first, .taskSaved(commandTask("alpha"), taskID: "id-alpha"))]
            for (index, id) in ids.enumerated() {
                let at = first + Int64(index + 1) * 1000
                entries.append(JournalEntry(at: at, .runStarted(RunStart(runID: id, task: name("alpha"), slot: nil, attempt: 1, trigger: .manual))))
                entries.append(JournalEntry(at: at + 1, .runFinished(RunEnd(runID: id, task: name("alpha"), outcome: .succeeded, exitCode: 0, signal: nil,
                                                                             durationMs: 1, latenessMs: nil, final: true, message: nil))))
            }
            for (index, entry) in entries.enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
            return state
        }
        func runs() throws -> [[String?]] {
            try (one.database as! PostgresViewDatabase).connection.query(#"SELECT "Node", "RunId" FROM runs ORDER BY "Node", "RunId""#)
        }
        try one.apply(touched: [name("alpha")], state: state(runs: ["a1", "a2"], at: 1_795_000_000_000))
        try two.apply(touched: [name("alpha")], state: state(runs: ["b1"], at: 1_795_000_100_000))
        #expect(try runs() == [["node-1", "a1"], ["node-1", "a2"], ["node-2", "b1"]])
        try one.apply(touched: [name("alpha")], state: state(runs: ["a1", "a2", "a3"], at: 1_795_000_000_000))
        #expect(try runs() == [["node-1", "a1"], ["node-1", "a2"], ["node-1", "a3"], ["node-2", "b1"]])
    }

    /// A node's rebuild (a new journal, a view ahead of it) leaves the other nodes' rows: their runs, and the shared
    /// `task_models`. It deleted every task's row, so a node with a fresh journal emptied the view on every node.
    @Test func aNodesRebuildLeavesTheOtherNodesRows() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let zone = TimeZone(identifier: "UTC")!
        let (one, _) = try QueryView.openOrReset(.postgres(url, node: "node-1"), workspace: home.workspace, defaultTimeZone: zone)
        let (two, _) = try QueryView.openOrReset(.postgres(url, node: "node-2"), workspace: home.workspace, defaultTimeZone: zone)
        var state = SchedulerState()
        for (index, entry) in sampleHistory().enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        try one.rebuild(from: state)
        let connection = (one.database as! PostgresViewDatabase).connection
        let tasks = try connection.query(#"SELECT count(*) FROM task_models"#)
        let runsOfOne = try connection.query(#"SELECT count(*) FROM runs WHERE "Node" = 'node-1'"#)
        #expect(tasks != [["0"]] && runsOfOne != [["0"]])
        try two.rebuild(from: SchedulerState())
        #expect(try connection.query(#"SELECT count(*) FROM task_models"#) == tasks, "node-2's empty rebuild leaves the tasks' rows")
        #expect(try connection.query(#"SELECT count(*) FROM runs WHERE "Node" = 'node-1'"#) == runsOfOne, "and node-1's runs")
    }

    /// Thousands of tasks in one flush: the batch is a handful of statements, so it is quick over a socket.
    @Test func aFlushOfThousandsOfRowsIsOneStatementPerKind() throws {
        let fresh = try FreshView()
        defer { fresh.remove() }
        let view = fresh.view
        var state = SchedulerState()
        var lsn: UInt64 = 0
        func apply(_ event: JournalEntry.Event) { lsn += 1; Reducer.apply(JournalEntry(at: 1_795_000_000_000 + Int64(lsn), event), lsn: lsn, to: &state) }
        let names = (0..<2000).map { name("t\($0)") }
        for task in names { apply(.taskSaved(commandTask(task.rawValue), taskID: "id-\(task)")) }
        try view.rebuild(from: state)
        var newRuns: [(TaskName, RunSummary)] = []
        for (index, task) in names.enumerated() {
            apply(.runStarted(RunStart(runID: "r\(index)", task: task, slot: 1_795_000_010, attempt: 1, trigger: .schedule)))
            apply(.runFinished(RunEnd(runID: "r\(index)", task: task, outcome: .succeeded, exitCode: 0, signal: nil, durationMs: 3,
                                      latenessMs: 1, final: true, message: nil)))
            if let run = state.tasks[task]?.recentRuns.last { newRuns.append((task, run)) }
        }
        let connection = (view.database as! PostgresViewDatabase).connection
        let before = connection.roundTrips
        let started = ContinuousClock.now
        try view.apply(touched: Set(names), state: state, newRuns: newRuns, definitionsChanged: [])
        let took = ContinuousClock.now - started
        // BEGIN, the run columns, the runs, their trim, applied_lsn, COMMIT: not a statement per row (6,000).
        #expect(connection.roundTrips - before == 6)
        #expect(try connection.query(#"SELECT count(*) FROM runs"#) == [["2000"]])
        #expect(try connection.query(#"SELECT count(*) FROM task_models WHERE "LastExecutionTime" IS NOT NULL"#) == [["2000"]])
        #expect(try view.appliedLSN() == lsn)
        // Only a hang guard: the round trips above are the real check, and the server is shared with the
        // cluster tests.
        #expect(took < .seconds(300), "took \(took)")
    }

    /// The view commits without waiting for the server's WAL flush. A server that restarts may lose the newest
    /// commits: the writer's next transaction, in the new session, finds `applied_lsn` behind what it committed
    /// and says so, and a rebuild from the state puts every row back. A new session alone is no loss.
    @Test func commitsTheServerLostAreFoundInTheNextSession() throws {
        let fresh = try FreshView()
        defer { fresh.remove() }
        let (url, view) = (fresh.url, fresh.view)
        let connection = (view.database as! PostgresViewDatabase).connection
        #expect(try connection.query("SHOW synchronous_commit") == [["off"]])
        var state = SchedulerState()
        for (index, entry) in sampleHistory().enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        let all = Set(state.tasks.keys)
        try view.rebuild(from: state)
        let admin = try PostgresConnection(url: url)
        func dropSession() throws {
            let pid = try #require(try connection.query("SELECT pg_backend_pid()").first?.first ?? nil)
            try admin.query("SELECT pg_terminate_backend($1::int)", [pid])
        }

        try dropSession()
        try view.apply(touched: all, state: state)  // a new session, nothing lost: written as usual
        #expect(connection.reconnections == 1)
        #expect(try connection.query("SHOW synchronous_commit") == [["off"]], "kept across reconnections")

        // What a restart that lost the last commit leaves: the rows and applied_lsn of the one before.
        try admin.query("UPDATE applied_lsn SET lsn = lsn - 1")
        try admin.query(#"DELETE FROM runs"#)
        try dropSession()
        #expect(throws: ViewCommitsLost.self) { try view.apply(touched: [], state: state) }
        try view.perform(.rebuild, state: state)
        #expect(try view.appliedLSN() == state.lastLSN)
        #expect(try connection.query("SELECT count(*) FROM runs") != [["0"]], "the runs are back")
        try view.apply(touched: all, state: state)
    }

    @Test func aViewOfAnotherSchemaIsReplacedAndTablesKeijiDidNotCreateAreLeftAlone() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let zone = TimeZone(identifier: "UTC")!
        do {
            let (view, _) = try QueryView.openOrReset(.postgres(url), workspace: home.workspace, defaultTimeZone: zone)
            try (view.database as! PostgresViewDatabase).connection.query("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        }
        let (_, fresh) = try QueryView.openOrReset(.postgres(url), workspace: home.workspace, defaultTimeZone: zone)
        #expect(fresh, "keiji's view of another schema version is dropped and created again")

        let (other, dropOther) = try TestPostgres.makeDatabase()
        defer { dropOther() }
        try PostgresConnection(url: other).execute("CREATE TABLE runs (id int); INSERT INTO runs VALUES (7)")
        #expect { try QueryView.openOrReset(.postgres(other), workspace: home.workspace, defaultTimeZone: zone) } throws: { error in
            "\(error)".contains("already has runs, which keiji did not create")
        }
        #expect(throws: KeijiError.self) { try ViewLocation.postgres(other).checkAccess() }
        #expect(try PostgresConnection(url: other).query("SELECT id FROM runs") == [["7"]], "never dropped")
    }

    /// Every column of a batch travels as one array literal: quotes, backslashes, braces, commas, the text
    /// "NULL", an empty string and a real NULL all come back as they went.
    @Test func arrayLiteralsCarryAnyTextAndNull() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let values: [String?] = [#"say "hi""#, #"C:\dir\"#, "{a,b}", "NULL", "", nil, "día 日本", "line\nbreak", "tab\tand, comma"]
        let rows = try PostgresConnection(url: url).query("SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n",
                                                          [PostgresConnection.arrayLiteral(values)])
        #expect(rows.map { $0[0] } == values)
    }

    /// A statement is prepared at its second use in a session and run by name after (a CLI command, which sends
    /// most statements once, prepares none); a new session (the server dropped the old one, and its statements with
    /// it) prepares it again; texts past the limit still run, sent whole.
    @Test func statementsArePreparedOncePerSession() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let connection = try PostgresConnection(url: url)
        let admin = try PostgresConnection(url: url)
        let sum = "SELECT $1::int + 1"
        func preparedSums() throws -> [[String?]] {
            try connection.query("SELECT count(*) FROM pg_prepared_statements WHERE statement = $1 AND NOT from_sql", [sum])
        }
        #expect(try connection.query(sum, ["1"]) == [["2"]])
        #expect(try preparedSums() == [["0"]], "sent once: not prepared")
        #expect(try connection.query(sum, ["2"]) == [["3"]])
        #expect(try connection.query(sum, ["3"]) == [["4"]])
        #expect(try preparedSums() == [["1"]])

        let pid = try #require(try connection.query("SELECT pg_backend_pid()").first?.first ?? nil)
        try admin.query("SELECT pg_terminate_backend($1::int)", [pid])
        #expect(try connection.query(sum, ["4"]) == [["5"]])
        #expect(connection.reconnections == 1)
        #expect(try connection.query(sum, ["5"]) == [["6"]])
        #expect(try preparedSums() == [["1"]], "prepared again in the new session")

        for n in 0..<(PostgresConnection.preparedLimit + 4) {
            for _ in 0..<2 { #expect(try connection.query("SELECT \(n)") == [["\(n)"]]) }
        }
        #expect(try connection.query("SELECT count(*) FROM pg_prepared_statements") == [["\(PostgresConnection.preparedLimit)"]])
    }

    /// Within a shared session (a CLI call's), the view's reader and writer and the cluster's statements use one
    /// connection, which commits synchronously (the cluster's claims and commands need it); outside it (the
    /// scheduler), each has its own, and the view's does not wait for the WAL flush.
    @Test func aSharedSessionIsOneConnectionThatCommitsSynchronously() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        func synchronousCommit(_ connection: PostgresConnection) throws -> String? {
            try connection.query("SHOW synchronous_commit").first?.first ?? nil
        }
        // The database's default the other way each time, so that each session's own setting is what shows.
        func databaseDefault(_ value: String) throws {
            try PostgresConnection(url: url).execute("ALTER DATABASE \"\(url.lastPathComponent)\" SET synchronous_commit = \(value)")
        }
        try databaseDefault("off")
        try SharedPostgresSession.$current.withValue(SharedPostgresSession()) {
            let writer = try PostgresViewDatabase.openOrReset(url: url, node: "n").0.connection
            let reader = try #require(try PostgresViewDatabase.openForReading(url: url, node: "n")).connection
            let cluster = try ClusterDatabase(url: url, node: "n").connection
            #expect(writer === reader && reader === cluster, "one connection for the whole call")
            #expect(try synchronousCommit(cluster) == "on")
            let pids = Set(try [writer, reader, cluster].map { try $0.query("SELECT pg_backend_pid()").first?.first ?? nil })
            #expect(pids.count == 1, "one server session: \(pids)")
        }
        try databaseDefault("on")
        let writer = try PostgresViewDatabase.openOrReset(url: url, node: "n").0.connection
        let cluster = try ClusterDatabase(url: url, node: "n").connection
        #expect(writer !== cluster)
        #expect(try synchronousCommit(writer) == "off")
        #expect(try synchronousCommit(cluster) == "on")
    }

    /// Errors are one line, name the database as the caller does, and never show the password.
    @Test func connectionErrorsAreOneLineWithoutThePassword() throws {
        let server = try #require(TestPostgres.serverURL.flatMap(URL.init(string:)))
        var wrong = URLComponents(url: server, resolvingAgainstBaseURL: false)!
        wrong.password = "not-the-password-42"
        var closed = URLComponents(url: server, resolvingAgainstBaseURL: false)!
        closed.port = 1  // 127.0.0.1:1: nothing listens
        for (components, reason) in [(wrong, "password authentication failed"), (closed, "Connection refused")] {
            #expect { try PostgresConnection(url: components.url!, name: "DB_URL=test") } throws: { error in
                let message = "\(error)"
                return message.hasPrefix("DB_URL=test: cannot connect: ") && message.contains(reason) && !message.contains("\n")
                    && !message.contains(components.password ?? "?") && !message.contains("not-the-password-42")
            }
        }
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        #expect { try PostgresConnection(url: url).query("SELECT * FROM nowhere") } throws: { error in
            let message = "\(error)"
            return message.contains(#"relation "nowhere" does not exist"#) && !message.contains("\n")
                && !message.contains(URLComponents(url: url, resolvingAgainstBaseURL: false)!.password!)
        }
    }
}
