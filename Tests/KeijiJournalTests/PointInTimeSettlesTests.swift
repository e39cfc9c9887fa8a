import Testing

@testable import KeijiJournal

/// An operator cut (`pointInTime`) is a one-time decision: after it, the journal must be whole again, so the
/// next plain `strict` open works, repairs nothing and sees the same records (plus what was appended since).
/// Checked on a journal of many small segments whose oldest ones were compacted behind a checkpoint.
struct PointInTimeSettlesTests {
    func options(_ fs: SimulatedFileSystem, _ mode: JournalOptions.RecoveryMode) -> JournalOptions {
        var options = testOptions(io: fs, segmentSize: 4096 + 1024, recovery: mode)
        options.retention = .init(segments: 0)
        return options
    }

    /// 80 records in ~10 segments; a checkpoint in the middle of the fourth segment; the three before it
    /// compacted away, and the previous checkpoint compaction kept (at the end of the third) lost, so the checkpoint is
    /// the only copy of their state. Returns the checkpoint LSN.
    func compactedJournal(_ fs: SimulatedFileSystem) async throws -> UInt64 {
        let journal = try Journal.open(directory: "/j", options: options(fs, .strict))
        try await appendPayloads(journal, through: 80)
        let segments = try journal.contents.segments()
        #expect(segments.count > 6)
        let checkpointLSN = segments[3].baseLSN + 2
        #expect(checkpointLSN < segments[4].baseLSN - 1)
        try await journal.writeCheckpoint(Array("state at \(segments[3].baseLSN - 1)".utf8), at: segments[3].baseLSN - 1)
        try await journal.writeCheckpoint(Array("state at \(checkpointLSN)".utf8), at: checkpointLSN)
        let removed = try await journal.compact().removed
        #expect(removed == Array(segments.prefix(3)))
        try await journal.close()
        try fs.remove("/j/" + CheckpointFile.fileName(lsn: segments[3].baseLSN - 1))
        return checkpointLSN
    }

    /// Flips a payload byte of the batch frame that holds `lsn`; returns that frame's first LSN.
    func damageFrame(holding lsn: UInt64, _ fs: SimulatedFileSystem) throws -> UInt64 {
        let name = try #require(try JournalDirectory(path: "/j", io: fs).segments().last { $0.baseLSN <= lsn })
        var bytes = try #require(fs.contents(of: "/j/" + name.fileName))
        var offset = SegmentHeader.size
        while true {
            let frame = try bytes.withUnsafeBytes {
                try FrameHeader.parse($0, at: offset, segmentIDLow: UInt32(truncatingIfNeeded: name.segmentID), maxPayload: 1 << 20).get()
            }
            if frame.type == .batch, frame.firstLSN <= lsn, lsn < frame.firstLSN + UInt64(frame.recordCount) {
                bytes[offset + FrameHeader.size] ^= 0xFF
                fs.setContents(bytes, of: "/j/" + name.fileName)
                return frame.firstLSN
            }
            offset += frame.frameSize
        }
    }

    /// Cut with `pointInTime`, append 10 records, close; then two strict opens must succeed without repairs.
    /// Returns the LSNs the final strict open reads after the checkpoint, and the checkpoint it uses.
    func cutAppendAndReopen(_ fs: SimulatedFileSystem, mode: JournalOptions.RecoveryMode = .pointInTime) async throws -> (lsns: [UInt64], checkpoint: UInt64?, cutInfo: RecoveryInfo) {
        #expect { try Journal.open(directory: "/j", options: options(fs, .strict)) } throws: { isCorruption($0) }
        let cut = try Journal.open(directory: "/j", options: options(fs, mode))
        #expect(cut.recovery.repairs.contains { $0.kind == .corruptionTruncated }, "\(cut.recovery.repairs)")
        let afterCut = cut.lastLSN
        try await appendPayloads(cut, through: afterCut + 10)
        try await cut.close()
        var result: (lsns: [UInt64], checkpoint: UInt64?) = ([], nil)
        for _ in 0..<2 {
            let strict = try Journal.open(directory: "/j", options: options(fs, .strict))
            #expect(strict.recovery.isClean, "the cut settled: \(strict.recovery.repairs)")
            #expect(strict.lastLSN == afterCut + 10)
            let checkpoint = strict.latestCheckpoint?.lsn
            result = (try verifiedLSNs(strict.contents, from: (checkpoint ?? 0) + 1), checkpoint)
            try await strict.close()
        }
        return (result.lsns, result.checkpoint, cut.recovery)
    }

    @Test func aCutInAMiddleSegmentAfterTheCheckpointSettles() async throws {
        let fs = SimulatedFileSystem()
        let checkpointLSN = try await compactedJournal(fs)
        let damaged = try damageFrame(holding: 50, fs)
        let (lsns, checkpoint, _) = try await cutAppendAndReopen(fs)
        #expect(checkpoint == checkpointLSN)
        // The records before the damage, then the 10 appended after the cut under the next LSNs.
        #expect(lsns == Array((checkpointLSN + 1)..<(damaged + 10)))
    }

    @Test func aCutInTheLastSegmentVouchedForByALaterFrameSettles() async throws {
        let fs = SimulatedFileSystem()
        let checkpointLSN = try await compactedJournal(fs)
        let damaged = try damageFrame(holding: 78, fs)
        let (lsns, checkpoint, _) = try await cutAppendAndReopen(fs)
        #expect(checkpoint == checkpointLSN)
        #expect(lsns == Array((checkpointLSN + 1)..<(damaged + 10)))
    }

    /// The damage sits in records the checkpoint already covers, and the segments before them were compacted:
    /// the checkpoint is the only copy of that state, so the cut keeps it and bridges the LSNs up to it.
    @Test func aCutBeforeTheCheckpointInACompactedJournalKeepsTheCheckpointAndSettles() async throws {
        let fs = SimulatedFileSystem()
        let checkpointLSN = try await compactedJournal(fs)
        _ = try damageFrame(holding: checkpointLSN - 1, fs)
        let (lsns, checkpoint, cutInfo) = try await cutAppendAndReopen(fs)
        #expect(checkpoint == checkpointLSN, "the only record of the state before the first segment is kept")
        #expect(!cutInfo.repairs.contains { $0.kind == .checkpointQuarantined })
        #expect(lsns == Array((checkpointLSN + 1)...(checkpointLSN + 10)))
    }

    /// `salvage` re-appends the intact records after the damage first; the checkpoint is kept all the same.
    @Test func aSalvageBeforeTheCheckpointInACompactedJournalSettles() async throws {
        let fs = SimulatedFileSystem()
        let checkpointLSN = try await compactedJournal(fs)
        _ = try damageFrame(holding: checkpointLSN - 1, fs)
        let (lsns, checkpoint, cutInfo) = try await cutAppendAndReopen(fs, mode: .salvage)
        #expect(checkpoint == checkpointLSN)
        #expect(cutInfo.repairs.contains { $0.kind == .recordsSalvaged })
        #expect(lsns == Array((checkpointLSN + 1)...90), "every record after the checkpoint survived, then the 10 appended")
    }

    /// A segment whose header is unreadable is cut whole; the new segment must chain to the one before it.
    @Test func aCutOfAWholeMiddleSegmentSettles() async throws {
        let fs = SimulatedFileSystem()
        let checkpointLSN = try await compactedJournal(fs)
        let segments = try JournalDirectory(path: "/j", io: fs).segments()
        let victim = segments[3]
        var bytes = try #require(fs.contents(of: "/j/" + victim.fileName))
        bytes[8] ^= 0xFF
        fs.setContents(bytes, of: "/j/" + victim.fileName)
        let (lsns, checkpoint, _) = try await cutAppendAndReopen(fs)
        #expect(checkpoint == checkpointLSN)
        #expect(lsns == Array((checkpointLSN + 1)..<(victim.baseLSN + 10)))
    }
}
