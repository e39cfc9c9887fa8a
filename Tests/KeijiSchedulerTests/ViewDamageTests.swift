import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// The scheduler checks its view at start (`PRAGMA quick_check`). Damage that appears while it runs makes a flush
/// fail with ``KeijiError/Code-swift.struct/databaseDamaged``: the view is set aside and a new one filled from the
/// state, instead of every later flush failing until a restart.
struct ViewDamageTests {
    @Test func aViewDamagedWhileTheSchedulerRunsIsSetAsideAndRebuilt() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("alpha", "true", every: 3600))
        let engine = harness.engine(spawn: false)
        try await engine.start()
        await engine.waitForView()

        // Damage SQLite meets on the next write to task_models: its root page made to point at an index's page (the
        // schema version raised, so the scheduler's connection reads the schema again).
        let path = harness.workspace.databaseFile
        do {
            let other = try SQLiteDatabase(path: path)
            let index = try #require(try other.rows("SELECT rootpage FROM sqlite_schema WHERE name = 'runs_by_task'").first?.first ?? nil)
            let version = try #require(try other.rows("PRAGMA schema_version").first?.first?.flatMap { Int($0) })
            try other.execute("""
                PRAGMA writable_schema = ON;
                UPDATE sqlite_schema SET rootpage = \(index) WHERE name = 'task_models';
                PRAGMA writable_schema = OFF;
                PRAGMA schema_version = \(version + 1);
                """)
        }

        _ = try await engine.submit(.taskSaved(try harness.commandTask("beta", "true", every: 3600), taskID: "id-beta"))
        let rebuilt = await harness.wait {
            let view = try SQLiteViewDatabase(readingFrom: path)
            return try view.connection.rows("SELECT Name FROM task_models ORDER BY Name").map { $0.first ?? nil } == ["alpha", "beta"]
                && view.connection.rows("PRAGMA quick_check").first?.first == "ok"
        }
        #expect(rebuilt, "the view holds both tasks again")
        #expect(FileManager.default.fileExists(atPath: path + ".damaged"))
        await engine.stop()
    }

    /// A `pointInTime` start over a damaged checkpoint that was the only copy of a compacted journal's start: the
    /// state lost the task, and the view, whose `applied_lsn` the journal still reaches, listed it as scheduled
    /// (`--get` showed it, `--run` said there was no such task). A repair that loses acknowledged records rebuilds it.
    @Test func aViewIsRebuiltWhenRecoveryLosesAcknowledgedRecords() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("alpha", "true", every: 3600))
        // Checkpoint, roll, and delete the segment before it, as compaction did when it kept one checkpoint: the
        // checkpoint alone holds alpha's definition.
        let journal = try Journal.open(directory: harness.workspace.journalDirectory)
        let state = try StateLoader.load(from: journal).state
        try await journal.writeCheckpoint(try StateLoader.snapshot(state), at: journal.lastLSN)
        try await journal.roll()
        let first = try #require(try journal.contents.segments().first)
        try await journal.close()
        try FileManager.default.removeItem(atPath: harness.workspace.journalDirectory + "/" + first.fileName)
        let checkpoint = harness.workspace.journalDirectory + "/" + (try #require(
            try FileManager.default.contentsOfDirectory(atPath: harness.workspace.journalDirectory).first { $0.hasSuffix(".ckpt") }))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        bytes[bytes.count - 1] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: checkpoint))

        await #expect(throws: (any Error).self) { _ = try await harness.engine(spawn: false).start() }
        let engine = harness.engine(spawn: false, recoveryMode: .pointInTime)
        let report = try await engine.start()
        #expect(await engine.state.tasks.isEmpty, "the state lost alpha with the checkpoint")
        #expect(report.viewRebuilt, "\(report.journal.repairs)")
        // Written by the start, before the record of the repairs goes: not left to the first flush.
        #expect(!FileManager.default.fileExists(atPath: harness.workspace.journalDirectory + "/unreported-repairs.json"))
        let rebuilt = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        #expect(try rebuilt.rows("SELECT Name FROM task_models").isEmpty, "rebuilt when the start returned")
        await engine.waitForView()
        let db = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        #expect(try db.rows("SELECT Name FROM task_models").isEmpty, "the view no longer lists alpha")
        await engine.stop()
    }
}

extension ViewDamageTests {
    /// A view that cannot be updated (its disk full; here a trigger refuses every flush) is logged once, not at every
    /// retry (every 200 ms: 430,000 lines a day), and once more when it catches up, with how long it was behind.
    /// Meanwhile `view.behind` says so, for `task --list` and `system --status`.
    @Test func aViewThatCannotBeUpdatedIsLoggedOnceAndAgainWhenItCatchesUp() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("alpha", "true", every: 3600))
        let engine = harness.engine(spawn: false)
        try await engine.start()
        await engine.waitForView()
        let path = harness.workspace.databaseFile
        let other = try SQLiteDatabase(path: path)
        try other.execute("CREATE TRIGGER held BEFORE UPDATE ON applied_lsn BEGIN SELECT RAISE(ABORT, 'held by the test'); END")

        // The marker cannot be written at first (a folder in its place, as a full disk refuses it): it is tried again.
        let marker = ViewLag.path(harness.workspace)
        try FileManager.default.createDirectory(atPath: marker, withIntermediateDirectories: true)
        _ = try await engine.submit(.taskSaved(try harness.commandTask("beta", "true", every: 3600), taskID: "id-beta"))
        for _ in 0..<3 { await engine.flushView(evenIfUnchanged: true) }
        #expect(ViewLag.current(harness.workspace) == nil)
        try FileManager.default.removeItem(atPath: marker)
        for _ in 0..<2 { await engine.flushView(evenIfUnchanged: true) }
        func lines(_ text: String) throws -> [String] {
            try String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8).split(separator: "\n").map(String.init)
                .filter { $0.contains(text) }
        }
        #expect(try lines("query view update failed").count == 1)
        #expect(ViewLag.current(harness.workspace)?.reason.contains("held by the test") == true, "written once it could be")

        try other.execute("DROP TRIGGER held")
        await engine.flushView(evenIfUnchanged: true)
        let view = try SQLiteViewDatabase(readingFrom: path)
        #expect(try view.connection.rows("SELECT Name FROM task_models ORDER BY Name").map { $0.first ?? nil } == ["alpha", "beta"])
        #expect(try lines("query view caught up after ").count == 1 && lines("query view update failed").count == 1)
        #expect(ViewLag.current(harness.workspace) == nil)
        await engine.stop()
    }
}
