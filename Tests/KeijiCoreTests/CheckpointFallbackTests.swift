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

/// A checkpoint whose checksum is right but whose snapshot this keiji cannot decode (a newer keiji's, after a
/// downgrade, or a bug's) made every start and offline command fail, though the journal held every record after the
/// previous checkpoint. It is now handled as a damaged one when that loses nothing, and refused in one line when not.
extension CheckpointFallbackTests {
    static let newerFormat: [UInt8] = [0x04] + Array(repeating: 0xAB, count: 40)
    static let garbage: [UInt8] = Array("not a snapshot at all".utf8)

    /// Writes `snapshot` as the checkpoint at `lsn` through the journal's own checkpoint API (so its checksum is right).
    func writeCheckpoint(_ home: TemporaryHome, _ snapshot: [UInt8], at lsn: UInt64) async throws {
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        try await journal.writeCheckpoint(snapshot, at: lsn)
        try await journal.close()
    }

    /// Checkpoint files and whatever was set aside (the segments' own may grow or roll with the next open's notes).
    func checkpointAndQuarantineFiles(_ home: TemporaryHome) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: home.workspace.journalDirectory)) ?? [])
            .filter { $0.hasPrefix("ckpt-") || $0.hasSuffix(".broken") }.sorted()
    }

    @Test(arguments: [(newerFormat, "the snapshot was written by a newer keiji (format 4)"), (garbage, "the snapshot does not decode")])
    func anUndecodableLatestCheckpointFallsBackToThePreviousOne(snapshot: [UInt8], reason: String) async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let before = try await compactedHistory(home)
        try await writeCheckpoint(home, snapshot, at: 60)
        #expect(checkpointFiles(home) == [fileName(40), fileName(60)])

        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        let loaded = try StateLoader.load(from: journal)
        let repairs = journal.recovery.repairs
        try await journal.close()
        #expect(loaded.state == before, "the previous checkpoint's state plus the records after it")
        #expect(journal.latestCheckpoint?.lsn == 40 && journal.recovery.checkpointLSN == 40)
        #expect(repairs.map(\.kind) == [.checkpointQuarantined] && repairs[0].file == fileName(60), "\(repairs)")
        #expect(repairs[0].description.contains(reason), "\(repairs[0])")
        #expect(repairs[0].description.contains("fell back to the previous checkpoint, \(fileName(40)), and replays the records after LSN 40"),
                "\(repairs[0])")
        #expect(repairs.flatMap(\.lostAcknowledgedLSNs).isEmpty)
        #expect(checkpointFiles(home) == [fileName(40)])
        #expect(FileManager.default.fileExists(atPath: home.workspace.journalDirectory + "/" + fileName(60) + ".broken"))

        // Recorded for the next recovery report (an offline command's load must not be the only one to know), and settled.
        let next = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        let again = try StateLoader.load(from: next)
        try await next.close()
        #expect(next.earlierRepairs.map(\.repair) == repairs)
        #expect(next.recovery.repairs.isEmpty && again.state == before)
    }

    /// No checkpoint but an unreadable one, in a journal never compacted: the segments from LSN 1 are the state.
    @Test func anUndecodableOnlyCheckpointReplaysTheJournalFromItsStart() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        try home.workspace.createSystemDirectories()
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        for i in 0..<5 {
            _ = try await journal.append(try JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("t\(i)"), taskID: "id-\(i)")).encoded())
        }
        try await journal.writeCheckpoint(Self.newerFormat, at: 5)
        try await journal.close()

        let reopened = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options)
        let loaded = try StateLoader.load(from: reopened)
        let repairs = reopened.recovery.repairs
        try await reopened.close()
        #expect(loaded.state.tasks.count == 5 && loaded.recordsReplayed == 5)
        #expect(reopened.latestCheckpoint == nil)
        #expect(repairs.map(\.kind) == [.checkpointQuarantined], "\(repairs)")
        #expect(repairs.first?.description.contains("no older checkpoint is readable, so recovery replays the segments from their start") == true)
    }

    /// Both checkpoints unreadable and the segments before the older one compacted: no start loses the state they hold
    /// without being told to, in any mode; the load fails in one line naming the file, and nothing is renamed.
    @Test(arguments: [JournalOptions.RecoveryMode.strict, .pointInTime])
    func noReadableCheckpointFailsInOneLineAndChangesNothing(mode: JournalOptions.RecoveryMode) async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        _ = try await compactedHistory(home)
        try await writeCheckpoint(home, Self.newerFormat, at: 60)
        try await writeCheckpoint(home, Self.garbage, at: 40)
        let files = checkpointAndQuarantineFiles(home)
        #expect(checkpointFiles(home) == [fileName(40), fileName(60)])

        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: Self.options(mode))
        #expect {
            try StateLoader.load(from: journal)
        } throws: { error in
            let message = (error as? JournalError)?.message ?? ""
            return (error as? JournalError)?.code == .corruption && !message.contains("\n")
                && message.hasPrefix("cannot load the checkpoint \(fileName(60)) in \(home.workspace.journalDirectory): "
                                     + "the snapshot was written by a newer keiji (format 4); the older \(fileName(40)) cannot be read either")
                && message.contains("nothing was changed") && message.contains("Run the newer keiji")
        }
        let repairs = journal.recovery.repairs
        try await journal.close()
        #expect(repairs.isEmpty, "\(repairs)")
        #expect(checkpointAndQuarantineFiles(home) == files, "nothing renamed or deleted")
    }

    /// What `keiji journal verify` reports about the same journal, reading only: both unreadable checkpoints as
    /// corruption (the next start refuses), each with its reason, and nothing renamed.
    @Test func verifyFindingsSayTheNextStartRefusesWhenNoCheckpointIsReadable() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        _ = try await compactedHistory(home)
        try await writeCheckpoint(home, Self.newerFormat, at: 60)
        try await writeCheckpoint(home, Self.garbage, at: 40)
        let files = checkpointAndQuarantineFiles(home)

        let findings = try StateLoader.unreadableCheckpointFindings(in: JournalDirectory(path: home.workspace.journalDirectory))
        #expect(findings.map(\.file) == [fileName(60), fileName(40)] && findings.allSatisfy { $0.severity == .corruption }, "\(findings)")
        #expect(findings.first?.detail.hasPrefix("checksum valid, but the snapshot was written by a newer keiji (format 4); ") == true)
        #expect(findings.allSatisfy { $0.detail.hasSuffix("so the next start refuses to load the journal and changes nothing") }, "\(findings)")
        #expect(checkpointAndQuarantineFiles(home) == files, "nothing renamed or deleted")
    }
}
