import Testing

@testable import KeijiJournal

struct CheckpointTests {
    func makeJournal(_ fs: SimulatedFileSystem, retention: JournalOptions.Retention = .init(segments: 0)) throws -> Journal {
        var options = testOptions(io: fs, segmentSize: 4096 + 1024)
        options.retention = retention
        return try Journal.open(directory: "/j", options: options)
    }

    /// Compaction kept only the latest checkpoint and deleted the segments before it: a flipped byte in that one file
    /// lost the state. It keeps the previous checkpoint too, and every segment after it, for recovery to fall back to.
    @Test func compactionKeepsTheTwoNewestCheckpointsAndTheSegmentsAfterTheOlder() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs)
        try await appendPayloads(journal, through: 60)
        let before = try journal.contents.segments()
        #expect(before.count > 5)
        try await journal.writeCheckpoint(Array("snapshot at 20".utf8), at: 20)
        #expect(try await journal.compact().removed.isEmpty, "with one checkpoint, the segments are what recovery falls back to")
        try await journal.writeCheckpoint(Array("snapshot at 30".utf8), at: 30)
        let result = try await journal.compact()
        #expect(!result.removed.isEmpty && result.bytesFreed > 0)
        let after = try journal.contents.segments()
        #expect(after.count == before.count - result.removed.count)
        // Every removed segment ended at or before the older checkpoint; the first survivor starts at or before 21.
        for name in result.removed {
            let next = before[before.firstIndex(of: name)! + 1]
            #expect(next.baseLSN - 1 <= 20)
        }
        #expect(after.first!.baseLSN <= 21)
        #expect(fs.fileNames(in: "/j").filter { $0.hasSuffix(".ckpt") } == [CheckpointFile.fileName(lsn: 20), CheckpointFile.fileName(lsn: 30)])
        try await journal.close()

        let reopened = try makeJournal(fs)
        #expect(reopened.recovery.isClean && reopened.recovery.checkpointLSN == 30)
        #expect(reopened.latestCheckpoint?.snapshot == Array("snapshot at 30".utf8))
        #expect(try verifiedLSNs(reopened.contents, from: 21).first == 21)
        #expect(try verifiedLSNs(reopened.contents).last == 60)
        try await reopened.close()
    }

    @Test func retentionKeepsTheNewestCoveredSegments() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs, retention: .init(segments: 2))
        try await appendPayloads(journal, through: 60)
        try await journal.writeCheckpoint([1], at: 55)
        try await journal.writeCheckpoint([2], at: 60)
        let before = try journal.contents.segments()
        let covered = before.indices.dropLast().filter { before[$0 + 1].baseLSN - 1 <= 55 }.count
        let result = try await journal.compact()
        #expect(result.removed.count == covered - 2)
        #expect(result.removed == Array(before.prefix(covered - 2)), "oldest first")
        try await journal.close()
    }

    @Test func theTwoNewestCheckpointsAreKeptAndACheckpointPastTheEndIsRefused() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs)
        try await appendPayloads(journal, through: 10)
        try await journal.writeCheckpoint([1], at: 5)
        try await journal.writeCheckpoint([2], at: 8)
        #expect(fs.fileNames(in: "/j").filter { $0.hasSuffix(".ckpt") } == [CheckpointFile.fileName(lsn: 5), CheckpointFile.fileName(lsn: 8)])
        try await journal.writeCheckpoint([3], at: 9)
        #expect(fs.fileNames(in: "/j").filter { $0.hasSuffix(".ckpt") } == [CheckpointFile.fileName(lsn: 8), CheckpointFile.fileName(lsn: 9)])
        await #expect { try await journal.writeCheckpoint([3], at: 11) } throws: { ($0 as? JournalError)?.code == .invalidArgument }
        #expect(try await journal.append([9]) == 11, "a refused checkpoint does not stop the journal")
        try await journal.close()
    }

    @Test func aDamagedCheckpointFallsBackToAnOlderOne() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs)
        try await appendPayloads(journal, through: 10)
        try await journal.writeCheckpoint([5], at: 5)
        try await journal.close()
        var damaged = CheckpointFile.encode(Checkpoint(lsn: 9, createdNanoseconds: 1, snapshot: [9]))
        damaged[damaged.count - 1] ^= 1
        fs.setContents(damaged, of: "/j/" + CheckpointFile.fileName(lsn: 9))
        let reopened = try makeJournal(fs)
        #expect(reopened.latestCheckpoint?.lsn == 5)
        #expect(reopened.recovery.repairs.map(\.kind) == [.checkpointQuarantined])
        try await reopened.close()
    }

    @Test func missingSegmentsAreNeverSilentlySkipped() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs)
        try await appendPayloads(journal, through: 40)
        try await journal.close()
        let names = try JournalDirectory(path: "/j", io: fs).segments()
        // A segment in the middle disappears: the chain breaks.
        try fs.remove("/j/" + names[2].fileName)
        #expect { try makeJournal(fs) } throws: { isCorruption($0) }
        let repaired = try Journal.open(directory: "/j", options: { var o = testOptions(io: fs, segmentSize: 4096 + 1024, recovery: .pointInTime); o.retention = .init(segments: 0); return o }())
        #expect(try verifiedLSNs(repaired.contents) == Array(1..<names[2].baseLSN))
        #expect(repaired.recovery.repairs.contains { $0.kind == .corruptionTruncated })
        try await repaired.close()
    }

    @Test func missingFirstSegmentsWithoutACheckpointAreReported() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs)
        try await appendPayloads(journal, through: 40)
        try await journal.close()
        let first = try JournalDirectory(path: "/j", io: fs).segments()[0]
        try fs.remove("/j/" + first.fileName)
        #expect { try makeJournal(fs) } throws: { isCorruption($0) }
        var options = testOptions(io: fs, segmentSize: 4096 + 1024, recovery: .pointInTime)
        options.retention = .init(segments: 0)
        let opened = try Journal.open(directory: "/j", options: options)
        let repair = try #require(opened.recovery.repairs.first { $0.kind == .missingSegments })
        #expect(repair.lostLSNs?.lowerBound == 1)
        try await opened.close()
    }

    /// `verify` checked segments only: a checkpoint with a flipped byte gave `ok`, since ``JournalDirectory/latestCheckpoint()``
    /// passes over checkpoints that do not decode. It names each one: a warning while the segments still hold its
    /// LSNs, corruption once it is the only copy of LSNs whose segments were compacted away.
    @Test func verifyNamesADamagedCheckpointAndFailsWhenItWasTheOnlyCopy() async throws {
        let fs = SimulatedFileSystem()
        let journal = try makeJournal(fs)
        try await appendPayloads(journal, through: 60)
        try await journal.writeCheckpoint(Array("snapshot at 30".utf8), at: 30)
        try await journal.close()
        let file = CheckpointFile.fileName(lsn: 30)
        var bytes = try #require(fs.contents(of: "/j/" + file))
        bytes[bytes.count - 1] ^= 0x04
        fs.setContents(bytes, of: "/j/" + file)

        var report = try JournalDirectory(path: "/j", io: fs).verify()
        #expect(report.problems.map(\.file) == [file] && report.problems.map(\.severity) == [.warning], "\(report.problems)")
        #expect(!report.hasCorruption, "the segments still hold LSNs 1…30")

        fs.setContents(CheckpointFile.encode(Checkpoint(lsn: 30, createdNanoseconds: 1, snapshot: Array("snapshot at 30".utf8))), of: "/j/" + file)
        let compacting = try makeJournal(fs)
        try await compacting.writeCheckpoint(Array("snapshot at 60".utf8), at: 60)
        #expect(try await !compacting.compact().removed.isEmpty)
        try await compacting.close()
        // Both damaged: nothing else holds LSNs 1…30 (a journal compacted with one checkpoint kept is the same).
        let newer = "/j/" + CheckpointFile.fileName(lsn: 60)
        let newerBytes = try #require(fs.contents(of: newer))
        fs.setContents(Array(newerBytes.dropLast()) + [newerBytes.last! ^ 0x04], of: newer)
        fs.setContents(bytes, of: "/j/" + file)
        report = try JournalDirectory(path: "/j", io: fs).verify()
        let named = try #require(report.problems.first { $0.file == file }, "\(report.problems)")
        #expect(named.severity == .corruption && named.detail.contains("only copy"), "\(named)")
        #expect(report.hasCorruption)
        fs.setContents(newerBytes, of: newer)

        // Beside a newer valid checkpoint, a damaged older one is never read: the warning does not promise that a
        // start sets it aside (a start loads the newest valid one; the next checkpoint deletes the older).
        fs.setContents(CheckpointFile.encode(Checkpoint(lsn: 30, createdNanoseconds: 1, snapshot: Array("snapshot at 30".utf8))), of: "/j/" + file)
        let later = try makeJournal(fs)
        try await later.writeCheckpoint(Array("snapshot at 60".utf8), at: 60)
        try await later.close()
        fs.setContents(bytes, of: "/j/" + file)
        report = try JournalDirectory(path: "/j", io: fs).verify()
        let older = try #require(report.problems.first { $0.file == file }, "\(report.problems)")
        #expect(older.severity == .warning && older.detail.contains("older than the valid checkpoint at LSN 60") && !older.detail.contains("sets it aside"),
                "\(older)")
    }
}
