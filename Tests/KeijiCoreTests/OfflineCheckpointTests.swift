import Foundation
import KeijiJournal
import Testing

@testable import KeijiCore

/// An offline command replays the records after the latest checkpoint; past ``OfflineCommands/checkpointAfterRecords``
/// it writes a checkpoint first, so a workspace filled offline does not replay its whole history at every command.
struct OfflineCheckpointTests {
    let settings = try! Settings.parse(Settings.defaultFileContents(timeZone: "UTC"), file: "settings.conf")

    /// Journals `count` records straight into the workspace's journal, as that many earlier commands would have: the
    /// tasks `t0`… saved, and a run started and left open (a crash), which the checkpoint must keep.
    func journalHistory(_ home: TemporaryHome, tasks count: Int, extra: [[UInt8]] = []) async throws {
        try home.workspace.createSystemDirectories()
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: options)
        for i in 0..<count {
            _ = try await journal.append(try JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("t\(i)"), taskID: "id-\(i)")).encoded())
        }
        let open = RunStart(runID: "open", task: name("t0"), slot: 1_795_000_010, attempt: 1, trigger: .schedule)
        _ = try await journal.append(try JournalEntry(at: 1_795_000_010_000, .runStarted(open)).encoded())
        for record in extra { _ = try await journal.append(record) }
        try await journal.close()
    }

    func load(_ home: TemporaryHome) async throws -> (StateLoader.Loaded, checkpointLSN: UInt64?) {
        let journal = try Journal.open(directory: home.workspace.journalDirectory)
        let loaded = try StateLoader.load(from: journal)
        let checkpoint = journal.latestCheckpoint?.lsn
        try await journal.close()
        return (loaded, checkpoint)
    }

    @Test func aLongReplayIsCheckpointedBeforeTheCommandIsAppended() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let count = OfflineCommands.checkpointAfterRecords
        try await journalHistory(home, tasks: count)
        let lsn = try await OfflineCommands.submit(.taskDisabled(name("t1")), workspace: home.workspace, settings: settings)
        #expect(lsn == UInt64(count + 2))

        let (loaded, checkpointLSN) = try await load(home)
        #expect(checkpointLSN == UInt64(count + 1), "the checkpoint covers what was replayed, not the command")
        #expect(loaded.recordsReplayed == 1)
        #expect(loaded.state.tasks.count == count)
        #expect(loaded.state.tasks[name("t1")]?.isDisabled == true)
        #expect(loaded.state.activeRuns["open"] != nil, "a run a crash left open is still there for the scheduler's recovery")
    }

    @Test func aShortReplayWritesNoCheckpoint() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try await journalHistory(home, tasks: OfflineCommands.checkpointAfterRecords - 2)
        try await OfflineCommands.submit(.taskDisabled(name("t1")), workspace: home.workspace, settings: settings)
        let (loaded, checkpointLSN) = try await load(home)
        #expect(checkpointLSN == nil)
        #expect(loaded.recordsReplayed == OfflineCommands.checkpointAfterRecords)
    }

    /// Records replay refused stay after the checkpoint, so the scheduler's next start still lists them.
    @Test func refusedRecordsAreNotCheckpointedOver() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try await journalHistory(home, tasks: OfflineCommands.checkpointAfterRecords, extra: [Array("not json at all".utf8)])
        try await OfflineCommands.submit(.taskDisabled(name("t1")), workspace: home.workspace, settings: settings)
        let (loaded, checkpointLSN) = try await load(home)
        #expect(checkpointLSN == nil)
        #expect(loaded.refused.count == 1)
    }
}
