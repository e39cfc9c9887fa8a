import Foundation
import Testing
import KeijiJournal

@testable import KeijiCore

extension QueryView {
    /// A view in a new SQLite file at `path`.
    convenience init(sqlite path: String, workspace: Workspace, defaultTimeZone: TimeZone) throws {
        self.init(database: try SQLiteViewDatabase(path: path), workspace: workspace, defaultTimeZone: defaultTimeZone)
    }

    var sqlite: SQLiteDatabase { (database as! SQLiteViewDatabase).connection }
}

struct QueryViewTests {
    static let taskColumns = "ID, TaskId, Name, Description, Schedule, ScheduleInfo, LastExecutionTime, NextExecutionTime, LogPath, Slug, Type, Executable, IsRunning, IsQueued, IsError, IsDisabled, ErrorTxt, Policy, CreatedAt, UpdatedAt"
    static let runColumns = "RunId, TaskName, SlotTime, StartTime, EndTime, LatenessMs, Outcome, ExitCode, Signal, Attempt, Trigger, Message, DurationMs"

    func dump(_ view: QueryView) throws -> [[String?]] {
        try view.sqlite.rows("SELECT \(Self.taskColumns) FROM task_models ORDER BY Name")
            + view.sqlite.rows("SELECT \(Self.runColumns) FROM runs ORDER BY RunId, TaskName, EndTime")
            + view.sqlite.rows("SELECT lsn FROM applied_lsn")
    }

    @Test func aRebuiltViewEqualsTheLiveOne() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let zone = TimeZone(identifier: "UTC")!
        try home.workspace.createSystemDirectories()
        let live = try QueryView(sqlite: home.path + "/live.db", workspace: home.workspace, defaultTimeZone: zone)
        // As the scheduler writes it: whole rows only for saved definitions, the run columns and new runs otherwise.
        let incremental = try QueryView(sqlite: home.path + "/incremental.db", workspace: home.workspace, defaultTimeZone: zone)
        var state = SchedulerState()
        for (index, entry) in sampleHistory().enumerated() {
            Reducer.apply(entry, lsn: UInt64(index + 1), to: &state)
            let touched = Set([entry.taskName].compactMap { $0 })
            try live.apply(touched: touched, state: state)
            try applyAsTheScheduler(entry, state: state, to: incremental)
            #expect(try dump(incremental) == dump(live), "after \(entry.typeName) at LSN \(index + 1)")
        }
        let rebuilt = try QueryView(sqlite: home.path + "/rebuilt.db", workspace: home.workspace, defaultTimeZone: zone)
        try rebuilt.rebuild(from: state)
        let liveRows = try dump(live)
        #expect(liveRows.count > 10)
        let rebuiltRows = try dump(rebuilt)
        #expect(liveRows.count == rebuiltRows.count)
        #expect(liveRows == rebuiltRows)
    }

    @Test func theSqlite3ToolReadsTheSeedColumns() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let path = home.path + "/keiji.db"
        var state = SchedulerState()
        for (index, entry) in sampleHistory().enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        let view = try QueryView(sqlite: path, workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        try view.rebuild(from: state)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, "SELECT Name, Type, Schedule, IsDisabled FROM task_models ORDER BY Name;"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(output == "alpha|HMS|units:seconds,interval:20|0\ngamma|HMS|units:seconds,interval:60|0\n")
    }

    @Test func aDamagedViewIsSetAsideAndRebuilt() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let path = home.path + "/keiji.db"
        try Data("this is not a database, just damage".utf8).write(to: URL(fileURLWithPath: path))
        let (view, fresh) = try QueryView.openOrReset(.sqlite(path: path), workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        #expect(fresh && FileManager.default.fileExists(atPath: path + ".damaged"))
        #expect(try view.appliedLSN() == 0)
        let (_, again) = try QueryView.openOrReset(.sqlite(path: path), workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        #expect(!again)
    }

    /// A command written offline opens the view without SQLite's page-by-page check (it reads the whole file). When
    /// its writes meet a damaged page (here the root of `task_models`, which every row written passes), the view is
    /// set aside and rebuilt: the command and every task before it are in the new view, and nothing is lost.
    @Test func anOfflineCommandWhoseWritesMeetDamageRebuildsTheView() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let settings = try Settings.parse(Settings.defaultFileContents(timeZone: "UTC"), file: "settings.conf")
        try await OfflineCommands.submit(.taskSaved(commandTask("alpha"), taskID: "id-alpha"), workspace: home.workspace, settings: settings)
        let path = home.workspace.databaseFile
        var root = 0
        var pageSize = 0
        do {
            // The view's pages all in its file, no copy of them in the WAL to read instead (as a scheduler's clean
            // stop leaves it).
            try SQLiteDatabase(path: path).execute("PRAGMA wal_checkpoint(TRUNCATE)")
            #expect((FileSystem.size(of: path + "-wal") ?? 0) == 0)
            let inspected = try SQLiteDatabase(path: path, readOnly: true)
            root = try #require(try inspected.rows("SELECT rootpage FROM sqlite_schema WHERE name = 'task_models'").first?.first?.flatMap { Int($0) })
            pageSize = try #require(try inspected.rows("PRAGMA page_size").first?.first?.flatMap { Int($0) })
        }
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try file.seek(toOffset: UInt64((root - 1) * pageSize))
        try file.write(contentsOf: Data(repeating: 0xFF, count: 16))  // no b-tree page starts so
        try file.close()

        try await OfflineCommands.submit(.taskSaved(commandTask("beta"), taskID: "id-beta"), workspace: home.workspace, settings: settings)
        #expect(FileManager.default.fileExists(atPath: path + ".damaged"))
        let view = try SQLiteViewDatabase(readingFrom: path)
        #expect(try view.connection.rows("SELECT Name FROM task_models ORDER BY Name").map { $0.first ?? nil } == ["alpha", "beta"])
        #expect(try view.connection.rows("PRAGMA quick_check").first?.first == "ok")
    }

    /// A command journaled offline stands when the view then cannot take it (a full disk under `keiji.db`, here a
    /// trigger that refuses the row): it was reported failed, and the scheduler's replay then applied it. The caller
    /// is told the view is behind, and the next command catches the view up.
    @Test func anOfflineCommandJournaledStandsWhenTheViewCannotTakeIt() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let settings = try Settings.parse(Settings.defaultFileContents(timeZone: "UTC"), file: "settings.conf")
        try await OfflineCommands.submit(.taskSaved(commandTask("alpha"), taskID: "id-alpha"), workspace: home.workspace, settings: settings)
        let path = home.workspace.databaseFile
        try SQLiteDatabase(path: path).execute("CREATE TRIGGER refuse BEFORE INSERT ON task_models BEGIN SELECT RAISE(ABORT, 'no room'); END")
        var behind: [String] = []
        let lsn = try await OfflineCommands.submit(.taskSaved(commandTask("beta"), taskID: "id-beta"), workspace: home.workspace,
                                                   settings: settings, viewBehind: { behind.append($0) })
        #expect(behind.count == 1 && behind[0].contains("no room"), "\(behind)")
        let journal = try Journal.open(directory: home.workspace.journalDirectory)
        let state = try StateLoader.load(from: journal).state
        try await journal.close()
        let beta = try TaskName("beta")
        #expect(state.lastLSN == lsn && state.tasks[beta] != nil, "the command is in the journal")

        try SQLiteDatabase(path: path).execute("DROP TRIGGER refuse")
        try await OfflineCommands.submit(.taskDisabled(try TaskName("alpha")), workspace: home.workspace, settings: settings)
        let view = try SQLiteViewDatabase(readingFrom: path)
        #expect(try view.connection.rows("SELECT Name FROM task_models ORDER BY Name").map { $0.first ?? nil } == ["alpha", "beta"])
    }

    /// A writer's close leaves the WAL (no checkpoint, no sync: an offline command's four syncs for the view), and
    /// the next connection reads what it holds; an open that finds it past `walCheckpointBytes` copies it into the
    /// file and empties it, so that a WAL shared by short-lived connections stays short.
    @Test func aClosedWriterLeavesItsWALAndAnOpenEmptiesALongOne() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let path = home.path + "/keiji.db"
        do {
            let writer = try SQLiteViewDatabase(path: path)
            try writer.transaction { try writer.setAppliedLSN(7) }
        }
        #expect((FileSystem.size(of: path + "-wal") ?? 0) > 0, "the close left the WAL")
        #expect(try SQLiteViewDatabase(readingFrom: path).appliedLSN() == 7)

        var lsn: UInt64 = 7
        do {
            let writer = try SQLiteViewDatabase(path: path)
            while (FileSystem.size(of: path + "-wal") ?? 0) <= SQLiteViewDatabase.walCheckpointBytes {
                lsn += 1
                try writer.transaction { try writer.setAppliedLSN(lsn) }  // a page a commit
            }
        }
        let writer = try SQLiteViewDatabase(path: path)
        #expect(FileSystem.size(of: path + "-wal") == 0, "emptied at the open")
        #expect(try writer.appliedLSN() == lsn && lsn > 100)
    }

    /// The scheduler writes the view without syncing it. A process crash loses nothing, so a view left unsynced in
    /// this boot is kept; one left unsynced in another boot (the machine went down) is rebuilt; one whose writer
    /// stopped cleanly is kept after a reboot too.
    @Test func aViewLeftUnsyncedByAnotherBootIsRebuilt() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let path = home.path + "/keiji.db"
        let marker = UnsyncedViewMarker(viewPath: path)
        func open(_ boot: String) throws -> (SQLiteViewDatabase, fresh: Bool) { try SQLiteViewDatabase.openOrReset(path: path, bootID: boot) }

        let (writer, fresh) = try open("boot-a")
        #expect(fresh)
        try writer.beginUnsyncedWrites(bootID: "boot-a")
        try writer.setAppliedLSN(7)
        #expect(marker.bootID() == "boot-a")
        #expect(try writer.connection.rows("PRAGMA synchronous").first?.first == "0")

        let (sameBoot, sameBootFresh) = try open("boot-a")  // the scheduler was killed, the machine stayed up
        #expect(!sameBootFresh)
        #expect(try sameBoot.appliedLSN() == 7)

        let (afterCrash, afterCrashFresh) = try open("boot-b")  // the machine went down meanwhile
        #expect(afterCrashFresh)
        #expect(try afterCrash.appliedLSN() == 0)
        #expect(marker.bootID() == nil)

        try afterCrash.beginUnsyncedWrites(bootID: "boot-b")
        try afterCrash.setAppliedLSN(9)
        try afterCrash.endUnsyncedWrites()  // a clean stop
        #expect(marker.bootID() == nil)
        let (afterReboot, afterRebootFresh) = try open("boot-c")
        #expect(!afterRebootFresh)
        #expect(try afterReboot.appliedLSN() == 9)
    }

    /// A task's history in the view is its newest `recentRunLimit` runs, as the state keeps them, also when runs
    /// finish in the same millisecond at the boundary; and a rebuilt view has the same runs.
    @Test func theViewKeepsEachTasksNewestRunsAsTheStateDoes() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let zone = TimeZone(identifier: "UTC")!
        try home.workspace.createSystemDirectories()
        let view = try QueryView(sqlite: home.path + "/live.db", workspace: home.workspace, defaultTimeZone: zone)
        var state = SchedulerState()
        var lsn: UInt64 = 0
        var at: Int64 = 1_795_000_000_000
        func apply(_ event: JournalEntry.Event) throws {
            lsn += 1
            let entry = JournalEntry(at: at, event)
            Reducer.apply(entry, lsn: lsn, to: &state)
            try applyAsTheScheduler(entry, state: state, to: view)
        }
        try apply(.taskSaved(commandTask("alpha"), taskID: "id-alpha"))
        let total = SchedulerState.recentRunLimit + 7
        for i in 0..<total {
            // Pairs of runs end in the same millisecond, so equal EndTimes fall on the boundary as it moves.
            if i % 2 == 0 { at += 1000 }
            try apply(.runStarted(RunStart(runID: "r\(i)", task: name("alpha"), slot: nil, attempt: 1, trigger: .manual)))
            try apply(.runFinished(RunEnd(runID: "r\(i)", task: name("alpha"), outcome: .succeeded, exitCode: 0, signal: nil, durationMs: 1,
                                          latenessMs: nil, final: true, message: nil)))
            let kept = Set(try view.sqlite.rows("SELECT RunId FROM runs").map { $0.first ?? nil })
            let expected = Set(state.tasks[name("alpha")]?.recentRuns.map(\.runID) ?? [])
            #expect(kept == expected, "after run \(i)")
        }
        #expect(try view.sqlite.rows("SELECT count(*) FROM runs").first?.first == String(SchedulerState.recentRunLimit))
        let rebuilt = try QueryView(sqlite: home.path + "/rebuilt.db", workspace: home.workspace, defaultTimeZone: zone)
        try rebuilt.rebuild(from: state)
        #expect(try dump(rebuilt) == dump(view))
    }

    @Test func everyEntryOfATasksHistoryIsARow() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try home.workspace.createSystemDirectories()
        let zone = TimeZone(identifier: "UTC")!
        try Self.checkEveryEntryOfATasksHistoryIsARow(
            live: QueryView(sqlite: home.path + "/live.db", workspace: home.workspace, defaultTimeZone: zone),
            rebuilt: QueryView(sqlite: home.path + "/rebuilt.db", workspace: home.workspace, defaultTimeZone: zone),
            rows: { view, task in try view.sqlite.rows("SELECT RunId, EndTime, Outcome FROM runs WHERE TaskName = ? ORDER BY rowid", [.text(task)]) })
    }

    @Test func runsAfterTheClockSteppedBackAreTheNewest() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try home.workspace.createSystemDirectories()
        let zone = TimeZone(identifier: "UTC")!
        try Self.checkRunsAfterTheClockSteppedBackAreTheNewest(
            live: QueryView(sqlite: home.path + "/live.db", workspace: home.workspace, defaultTimeZone: zone),
            rebuilt: QueryView(sqlite: home.path + "/rebuilt.db", workspace: home.workspace, defaultTimeZone: zone))
    }

    /// The newest runs are the ones made last, whatever the wall clock said when they ended: a task with its 20 runs
    /// kept, then the clock stepped back 10 min and a run failed. Ordered and trimmed by `EndTime`, the view dropped
    /// that run as it was written, and `--runs` and `--list`'s LAST RESULT showed the older successes.
    static func checkRunsAfterTheClockSteppedBackAreTheNewest(live: QueryView, rebuilt: QueryView) throws {
        var state = SchedulerState()
        var lsn: UInt64 = 0
        var at: Int64 = 1_795_000_000_000
        func apply(_ event: JournalEntry.Event) throws {
            lsn += 1
            let entry = JournalEntry(at: at, event)
            Reducer.apply(entry, lsn: lsn, to: &state)
            try applyAsTheScheduler(entry, state: state, to: live)
        }
        func run(_ id: String, _ outcome: RunOutcome) throws {
            try apply(.runStarted(RunStart(runID: id, task: name("alpha"), slot: nil, attempt: 1, trigger: .manual)))
            at += 1000
            try apply(.runFinished(RunEnd(runID: id, task: name("alpha"), outcome: outcome, exitCode: outcome == .failed ? 3 : 0, signal: nil,
                                          durationMs: 1000, latenessMs: nil, final: true, message: nil)))
        }
        var policy = RunPolicy()
        policy.continueOnError = true
        try apply(.taskSaved(commandTask("alpha", policy: policy), taskID: "id-alpha"))
        for i in 0..<SchedulerState.recentRunLimit { try run("r\(i)", .succeeded) }
        at -= 600_000
        try run("after1", .failed)
        try run("after2", .succeeded)
        try run("after3", .failed)
        let expected = state.tasks[name("alpha")]!.recentRuns.map(\.runID).reversed().map { $0 as String? }
        #expect(expected.prefix(3) == ["after3", "after2", "after1"])
        for (view, comment) in [(live, "written as the scheduler writes"), (rebuilt, "rebuilt")] {
            if view === rebuilt { try rebuilt.rebuild(from: state) }
            let runs = try view.database.runs(["RunId"], of: "alpha", limit: 25).map { $0[0] }
            #expect(runs == Array(expected), "\(comment): newest first, the state's history")
            let latest = try view.database.tasksWithLatestRun(["Name"], runColumns: ["RunId", "Outcome"])
            #expect(latest == [["alpha", "after3", "failed"]], "\(comment): the latest run")
        }
    }

    /// A run's duration is what the executor measured on the monotonic clock (its `run.finished`'s `durationMs`), not
    /// its wall-clock end minus start: a 20 s run with a 10 min step forward during it showed 10min 20s in `--runs`, the
    /// dashboard and `--runs --json`, and a 30 s run timed out across a step back showed 0ms. Kept in checkpoints too.
    @Test func aRunsDurationIsWhatItsExecutorMeasured() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try home.workspace.createSystemDirectories()
        var policy = RunPolicy()
        policy.continueOnError = true
        let state = ReducerTests().fold([
            JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("alpha", policy: policy), taskID: "id-alpha")),
            JournalEntry(at: 1_795_000_001_000, .runStarted(RunStart(runID: "ahead", task: name("alpha"), slot: nil, attempt: 1, trigger: .manual))),
            JournalEntry(at: 1_795_000_621_004, .runFinished(RunEnd(runID: "ahead", task: name("alpha"), outcome: .succeeded, exitCode: 0, signal: nil,
                                                                    durationMs: 20_000, latenessMs: nil, final: true, message: nil))),
            JournalEntry(at: 1_795_000_700_000, .runStarted(RunStart(runID: "back", task: name("alpha"), slot: nil, attempt: 1, trigger: .manual))),
            JournalEntry(at: 1_794_993_530_000, .runFinished(RunEnd(runID: "back", task: name("alpha"), outcome: .timedOut, exitCode: nil, signal: 15,
                                                                    durationMs: 30_000, latenessMs: nil, final: true, message: nil))),
        ])
        let runs = try #require(state.tasks[name("alpha")]?.recentRuns)
        #expect(runs.map(\.durationMs) == [20_000, 30_000], "as the dashboard shows them")
        #expect(try SnapshotCodec.decode(SnapshotCodec.encode(state)).tasks[name("alpha")]?.recentRuns.map(\.durationMs) == [20_000, 30_000])
        let view = try QueryView(sqlite: home.path + "/keiji.db", workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        try view.rebuild(from: state)
        #expect(try view.database.runs(["RunId", "DurationMs"], of: "alpha", limit: 5) == [["back", "30000"], ["ahead", "20000"]], "as --runs reads them")
    }

    /// A `RunId` is not a row's identity: a slot missed by two tasks is `missed-<slot>` in both (the view once kept
    /// one of them: two cron tasks missing the same minute showed the miss in one task's `--runs` only), and a run
    /// interrupted and then finished is two entries of its task's history. Whatever way the rows are written (the
    /// scheduler's flushes, a catch-up that writes whole tasks again, a rebuild), each task has a row per entry.
    /// - Parameter rows: a task's rows as (RunId, EndTime, Outcome), in the order they were written.
    static func checkEveryEntryOfATasksHistoryIsARow(live: QueryView, rebuilt: QueryView,
                                                     rows: (QueryView, String) throws -> [[String?]]) throws {
        var state = SchedulerState()
        var lsn: UInt64 = 0
        var at: Int64 = 1_795_000_000_000
        func apply(_ events: [JournalEntry.Event]) throws {
            var newRuns: [(TaskName, RunSummary)] = []
            var touched: Set<TaskName> = []
            for event in events {
                lsn += 1
                let entry = JournalEntry(at: at, event)
                Reducer.apply(entry, lsn: lsn, to: &state)
                guard let task = entry.taskName else { continue }
                touched.insert(task)
                switch event {
                case .runFinished, .runMissed, .runInterrupted: newRuns.append((task, state.tasks[task]!.recentRuns.last!))
                default: break
                }
            }
            at += 1000
            try live.apply(touched: touched, state: state, newRuns: newRuns, definitionsChanged: [])
        }
        func expectTheState(_ view: QueryView, _ comment: Comment) throws {
            for task in ["alpha", "beta"] {
                let expected = state.tasks[name(task)]!.recentRuns.map { [$0.runID, ISO8601.string(fromMilliseconds: $0.finishedAt), $0.outcome] }
                #expect(try rows(view, task) == expected, "\(task): \(comment)")
            }
        }
        lsn += 2
        Reducer.apply(JournalEntry(at: at, .taskSaved(commandTask("alpha"), taskID: "id-alpha")), lsn: lsn - 1, to: &state)
        Reducer.apply(JournalEntry(at: at, .taskSaved(commandTask("beta"), taskID: "id-beta")), lsn: lsn, to: &state)
        try live.rebuild(from: state)

        // Both miss the same slot, in one flush, then again in flushes of their own.
        try apply([.runMissed(RunMissed(task: name("alpha"), slot: 1_795_000_060, count: 1, reason: .downtime)),
                   .runMissed(RunMissed(task: name("beta"), slot: 1_795_000_060, count: 1, reason: .downtime))])
        try apply([.runMissed(RunMissed(task: name("alpha"), slot: 1_795_000_120, count: 1, reason: .overlap))])
        try apply([.runMissed(RunMissed(task: name("beta"), slot: 1_795_000_120, count: 1, reason: .overlap))])
        // Interrupted, and its end recorded after all.
        try apply([.runStarted(RunStart(runID: "r1", task: name("alpha"), slot: nil, attempt: 1, trigger: .manual))])
        try apply([.runInterrupted(runID: "r1", task: name("alpha"))])
        try apply([.runFinished(RunEnd(runID: "r1", task: name("alpha"), outcome: .failed, exitCode: 1, signal: nil, durationMs: 5,
                                       latenessMs: nil, final: true, message: nil))])
        #expect(state.tasks[name("alpha")]!.recentRuns.count == 4)
        try expectTheState(live, "written by flushes")

        try live.apply(touched: [name("alpha"), name("beta")], state: state)
        try expectTheState(live, "whole tasks written again over their rows (a catch-up)")
        try rebuilt.rebuild(from: state)
        try expectTheState(rebuilt, "rebuilt")
    }

    /// A cluster node applies the commands it pulls before one flush: a task deleted and created again in between
    /// must start with its own row (its own `CreatedAt`) and no runs of the task it replaced, as a rebuild has it.
    @Test func aTaskDeletedAndCreatedAgainBeforeAFlushStartsAfresh() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try home.workspace.createSystemDirectories()
        let zone = TimeZone(identifier: "UTC")!
        let live = try QueryView(sqlite: home.path + "/live.db", workspace: home.workspace, defaultTimeZone: zone)
        var state = SchedulerState()
        var lsn: UInt64 = 0
        func apply(_ event: JournalEntry.Event, at seconds: Int64) { lsn += 1; Reducer.apply(JournalEntry(at: seconds * 1000, event), lsn: lsn, to: &state) }
        apply(.taskSaved(commandTask("alpha"), taskID: "id-alpha"), at: 1_795_000_000)
        for (index, id) in ["old1", "old2"].enumerated() {
            apply(.runStarted(RunStart(runID: id, task: name("alpha"), slot: nil, attempt: 1, trigger: .manual)), at: 1_795_000_010 + Int64(index) * 10)
            apply(.runFinished(RunEnd(runID: id, task: name("alpha"), outcome: .succeeded, exitCode: 0, signal: nil, durationMs: 1, latenessMs: nil,
                                      final: true, message: nil)), at: 1_795_000_011 + Int64(index) * 10)
        }
        try live.rebuild(from: state)

        // Between two flushes: deleted, created again, and run once.
        apply(.taskDeleted(name("alpha")), at: 1_795_000_100)
        apply(.taskSaved(commandTask("alpha", every: 60), taskID: "id-alpha-2"), at: 1_795_000_101)
        apply(.runStarted(RunStart(runID: "new1", task: name("alpha"), slot: nil, attempt: 1, trigger: .manual)), at: 1_795_000_102)
        apply(.runFinished(RunEnd(runID: "new1", task: name("alpha"), outcome: .succeeded, exitCode: 0, signal: nil, durationMs: 1, latenessMs: nil,
                                  final: true, message: nil)), at: 1_795_000_103)
        try live.apply(touched: [name("alpha")], state: state, newRuns: [(name("alpha"), state.tasks[name("alpha")]!.recentRuns.last!)],
                       definitionsChanged: [name("alpha")], deleted: [name("alpha")])

        #expect(try live.sqlite.rows("SELECT RunId FROM runs") == [["new1"]])
        #expect(try live.sqlite.rows("SELECT TaskId, CreatedAt FROM task_models") == [["id-alpha-2", "2026-11-18T11:08:21.000Z"]])
        let rebuilt = try QueryView(sqlite: home.path + "/rebuilt.db", workspace: home.workspace, defaultTimeZone: zone)
        try rebuilt.rebuild(from: state)
        #expect(try dump(live) == dump(rebuilt))
    }

    func ids(_ view: QueryView) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try view.sqlite.rows("SELECT Name, ID FROM task_models").map { ($0[0] ?? "", $0[1] ?? "") })
    }

    /// The seed's `ID` is the task's for its whole life: rebuilding the view (every scheduler start may) keeps
    /// it, and only a task deleted and created again gets a new one.
    @Test func aTasksIDSurvivesRebuildsAndARecreatedTaskGetsANewOne() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let zone = TimeZone(identifier: "UTC")!
        var state = SchedulerState()
        var lsn: UInt64 = 0
        func apply(_ event: JournalEntry.Event) { lsn += 1; Reducer.apply(JournalEntry(at: Int64(lsn) * 1000, event), lsn: lsn, to: &state) }
        for task in ["b", "a", "c"] { apply(.taskSaved(commandTask(task), taskID: "id-\(task)")) }
        let view = try QueryView(sqlite: home.path + "/keiji.db", workspace: home.workspace, defaultTimeZone: zone)
        try view.rebuild(from: state)
        let first = try ids(view)
        #expect(first == ["b": "1", "a": "2", "c": "3"], "numbered in the order they were created")
        try view.rebuild(from: state)
        try view.rebuild(from: state)
        #expect(try ids(view) == first, "rebuilding the view keeps every ID")

        apply(.taskSaved(commandTask("a", every: 99), taskID: "id-a-2"))
        apply(.taskDeleted(name("c")))
        apply(.taskSaved(commandTask("c"), taskID: "id-c-2"))
        try view.apply(touched: [name("a"), name("c")], state: state)
        #expect(try ids(view) == ["b": "1", "a": "2", "c": "4"], "a new definition keeps the ID; delete + create gets a new one")
        try view.rebuild(from: state)
        #expect(try ids(view) == ["b": "1", "a": "2", "c": "4"])
    }

    /// A task in error (or disabled) waits for resolve (or enable): a next execution time would be a time that
    /// has passed, or a promise keiji does not keep.
    @Test func aTaskInErrorOrDisabledHasNoNextExecutionTime() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        var state = SchedulerState()
        var lsn: UInt64 = 0
        func apply(_ at: Int64, _ event: JournalEntry.Event) { lsn += 1; Reducer.apply(JournalEntry(at: at, event), lsn: lsn, to: &state) }
        let view = try QueryView(sqlite: home.path + "/keiji.db", workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        func next() throws -> String? { try view.sqlite.rows("SELECT NextExecutionTime FROM task_models WHERE Name = 'a'").first?.first ?? nil }
        apply(1_795_000_000_000, .taskSaved(commandTask("a"), taskID: "a"))
        try view.rebuild(from: state)
        #expect(try next() == ISO8601.string(fromSeconds: 1_795_000_010))
        apply(1_795_000_010_000, .runStarted(RunStart(runID: "1", task: name("a"), slot: 1_795_000_010, attempt: 1, trigger: .schedule)))
        apply(1_795_000_011_000, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .failed, exitCode: 3, signal: nil, durationMs: 1,
                                                     latenessMs: 0, final: true, message: "exit status 3")))
        try view.apply(touched: [name("a")], state: state)
        #expect(state.tasks[name("a")]?.isError == true)
        #expect(try next() == nil, "in error: no next execution")
        apply(1_795_000_012_000, .taskResolved(name("a")))
        try view.apply(touched: [name("a")], state: state)
        // A resolve restarts the slots from its own time (no catch-up for the time in error): 12 s + 10 s.
        #expect(try next() == ISO8601.string(fromSeconds: 1_795_000_022), "resolved: the next slot")
        apply(1_795_000_013_000, .taskDisabled(name("a")))
        try view.apply(touched: [name("a")], state: state)
        #expect(try next() == nil, "disabled: no next execution")
    }
}
