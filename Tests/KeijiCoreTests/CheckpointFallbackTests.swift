import Foundation
import KeijiJournal
import Testing

@testable import KeijiCore

/// Compaction kept only the latest checkpoint and deleted the segments before it, so one flipped byte in that file
/// lost every task definition. The previous checkpoint and the segments after it are kept now: recovery falls back
/// to it, replays the records after it, and says so in its repairs.
struct CheckpointFallbackTests {
    static let options: JournalOptions = {
        var options = JournalOptions()
        options.idleNoteDelay = nil
        options.segmentSize = 4096 + 1024  // many small segments, so compaction has some to delete
        options.retention = .init(segments: 0)
        return options
    }()

    static func options(_ mode: JournalOptions.RecoveryMode) -> JournalOptions {
        var options = Self.options
        options.recoveryMode = mode
        return options
    }

    /// Journals 60 tasks with a checkpoint and a compaction after every 20 (as the scheduler does after every 50,000
    /// records), then disables one; returns the state a strict open loads from the intact journal.
    func compactedHistory(_ home: TemporaryHome) async throws -> SchedulerState {
        try home.workspace.createSystemDirectories()
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        var state = SchedulerState()
        var removed = 0
        for i in 0..<60 {
            let entry = JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("t\(i)"), taskID: "id-\(i)"))
            Reducer.apply(entry, lsn: try await journal.append(try entry.encoded()), to: &state)
            if i % 20 == 19 {
                try await journal.writeCheckpoint(try StateLoader.snapshot(state), at: state.lastLSN)
                removed += try await journal.compact().removed.count
            }
        }
        _ = try await journal.append(try JournalEntry(at: 1_795_000_001_000, .taskDisabled(name("t3"))).encoded())
        try await journal.close()
        #expect(removed > 0, "compaction deleted the segments before the previous checkpoint")
        #expect(checkpointFiles(home) == [fileName(40), fileName(60)])

        let intact = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        let loaded = try StateLoader.load(from: intact).state
        try await intact.close()
        #expect(loaded.tasks.count == 60 && loaded.tasks[name("t3")]?.isDisabled == true)
        return loaded
    }

    func fileName(_ lsn: UInt64) -> String { "ckpt-" + String(repeating: "0", count: 20 - String(lsn).count) + "\(lsn).ckpt" }

    func checkpointFiles(_ home: TemporaryHome) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: home.workspace.journalDirectory)) ?? []).filter { $0.hasSuffix(".ckpt") }.sorted()
    }

    /// Flips one bit of the checkpoint at `lsn`, at `offset` (from the end when negative).
    func flip(_ home: TemporaryHome, checkpoint lsn: UInt64, at offset: Int) throws {
        let path = home.workspace.journalDirectory + "/" + fileName(lsn)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[offset < 0 ? bytes.count + offset : offset] ^= 0x08
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    /// In the magic, the LSN, the snapshot's length, the checksum, the snapshot, its last byte.
    @Test(arguments: [3, 17, 33, 41, 300, -1])
    func aFlippedBitInTheLatestCheckpointFallsBackToThePreviousOne(offset: Int) async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let before = try await compactedHistory(home)
        try flip(home, checkpoint: 60, at: offset)

        let report = try JournalDirectory(path: home.workspace.journalDirectory).verify()
        #expect(!report.hasCorruption && report.problems.map(\.file) == [fileName(60)], "\(report.problems)")

        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        let loaded = try StateLoader.load(from: journal)
        let repairs = journal.recovery.repairs
        try await journal.close()
        #expect(journal.latestCheckpoint?.lsn == 40)
        #expect(loaded.state == before, "the same state as before the flip")
        #expect(loaded.state.tasks.count == 60 && loaded.state.tasks[name("t3")]?.isDisabled == true)
        #expect(repairs.map(\.kind) == [.checkpointQuarantined] && repairs[0].file == fileName(60), "\(repairs)")
        #expect(repairs[0].description.contains("fell back to the previous checkpoint, \(fileName(40)), and replays the records after LSN 40"),
                "\(repairs[0])")
        #expect(repairs.flatMap(\.lostAcknowledgedLSNs).isEmpty)
        #expect(checkpointFiles(home) == [fileName(40)])
    }

    /// With both checkpoints damaged the state before the older one has no copy: a strict open refuses, as it did with
    /// the one checkpoint, and `pointInTime` opens without it, reporting the lost LSNs.
    @Test func bothCheckpointsDamagedStillRefuseAndPointInTimeReportsTheLoss() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        _ = try await compactedHistory(home)
        try flip(home, checkpoint: 60, at: -1)
        try flip(home, checkpoint: 40, at: 41)
        #expect(try JournalDirectory(path: home.workspace.journalDirectory).verify().hasCorruption)

        #expect {
            try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        } throws: { error in
            let message = (error as? JournalError)?.message ?? ""
            return (error as? JournalError)?.code == .corruption && message.contains("are missing and no checkpoint covers them")
                && message.contains("checkpointQuarantined: \(fileName(60))") && message.contains("checkpointQuarantined: \(fileName(40))")
                && message.contains("no older checkpoint verifies, so recovery replays the segments from their start")
        }

        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options(.pointInTime))
        let loaded = try StateLoader.load(from: journal)
        let repairs = journal.recovery.repairs
        let earlier = journal.earlierRepairs
        try await journal.close()
        #expect(journal.latestCheckpoint == nil)
        #expect(earlier.map(\.repair.kind) == [.checkpointQuarantined, .checkpointQuarantined] && earlier.allSatisfy(\.openRefused))
        let missing = try #require(repairs.first { $0.kind == .missingSegments }, "\(repairs)")
        #expect(missing.lostLSNs?.lowerBound == 1 && missing.lostLSNs!.upperBound <= 40)
        #expect(loaded.state.tasks.count < 60 && loaded.state.tasks[name("t59")] != nil, "the tasks after the loss are replayed")
    }
}
