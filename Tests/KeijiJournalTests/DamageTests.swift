import Testing

@testable import KeijiJournal

/// The damage patterns real systems have met (etcd zeroed sectors, Kafka garbage tails, stale recycled
/// frames, absurd lengths): each is detected, classified, and never yields a record that was not appended.
struct DamageTests {
    @Test func zeroedHoleInsideAcknowledgedDataIsCorruption() async throws {
        let fixture = try await SegmentFixture.make(batches: Array(repeating: 4, count: 12))
        var damaged = fixture.bytes
        let second = fixture.frames[1]
        for index in second.start..<min(second.start + 512, fixture.frames.last!.start) { damaged[index] = 0 }
        let fs = fixture.fileSystem(with: damaged)
        await #expect { try await openAndRead(fs) } throws: { isCorruption($0) }
        let (info, lsns) = try await openAndRead(fs, mode: .pointInTime)
        #expect(lsns == fixture.lsnsBefore(second.start))
        let repair = try #require(info.repairs.first { $0.kind == .corruptionTruncated })
        #expect(repair.lostLSNs?.lowerBound == second.lsns!.lowerBound)
        #expect(repair.lostLSNs?.upperBound == fixture.lastLSN, "the report names every LSN it dropped")
    }

    @Test func zeroedTailIsATornTail() async throws {
        let fixture = try await SegmentFixture.make()
        for zeroedFrom in [fixture.frames[4].start, fixture.frames[5].start] {
            var damaged = fixture.bytes
            for index in zeroedFrom..<damaged.count { damaged[index] = 0 }
            // Without the clean-close note nothing vouches for the last batch either.
            let (info, lsns) = try await openAndRead(fixture.fileSystem(with: damaged))
            #expect(lsns == fixture.lsnsBefore(zeroedFrom))
            #expect(info.repairs.map(\.kind) == [.tornTailTruncated])
        }
    }

    @Test func zerosThenGarbageAtTheTailIsATornTail() async throws {
        let fixture = try await SegmentFixture.make()
        var damaged = Array(fixture.bytes.prefix(fixture.frames[5].start))
        damaged += [UInt8](repeating: 0, count: 512) + (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
        let (info, lsns) = try await openAndRead(fixture.fileSystem(with: damaged))
        #expect(lsns == Array(1...fixture.lastLSN))
        #expect(info.repairs.first?.bytes == 812)
    }

    @Test func garbageAfterTheValidTailIsCutWithoutLoss() async throws {
        let fixture = try await SegmentFixture.make()
        var rng = SeededGenerator(seed: 7)
        let damaged = fixture.bytes + (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let fs = fixture.fileSystem(with: damaged)
        let (info, lsns) = try await openAndRead(fs)
        #expect(lsns == Array(1...fixture.lastLSN))
        let repair = try #require(info.repairs.first)
        #expect(repair.kind == .tornTailTruncated && repair.bytes == 4096 && repair.offset == fixture.bytes.count)
        #expect(fs.contents(of: fixture.path + ".\(fixture.bytes.count).broken")?.count == 4096, "quarantined, not deleted")
    }

    @Test func staleFramesFromAnotherSegmentNeverValidate() async throws {
        // A frame copied from another segment (a recycled or misdirected write) carries its old segment id.
        let other = try await SegmentFixture.make(batches: [2, 2])
        let fixture = try await SegmentFixture.make()
        let staleFrame = Array(other.bytes[other.frames[1].start..<other.frames[1].end])
        // At the tail: it is not part of this segment, so it is cut as a torn tail.
        let (info, lsns) = try await openAndRead(fixture.fileSystem(with: fixture.bytes + staleFrame))
        #expect(lsns == Array(1...fixture.lastLSN))
        #expect(info.repairs.map(\.kind) == [.tornTailTruncated])
        // Same segment id but older LSNs, in place of a frame: LSN continuity and the chain catch it.
        var replaced = fixture.bytes
        let target = fixture.frames[2]
        let copy = Array(fixture.bytes[fixture.frames[0].start..<fixture.frames[0].end])
        try #require(copy.count <= target.end - target.start)
        replaced.replaceSubrange(target.start..<(target.start + copy.count), with: copy)
        await #expect { try await openAndRead(fixture.fileSystem(with: replaced)) } throws: { isCorruption($0) }
    }

    @Test func duplicatedAndMissingFramesBreakTheChain() async throws {
        let fixture = try await SegmentFixture.make()
        let frame = fixture.frames[1]
        let frameBytes = Array(fixture.bytes[frame.start..<frame.end])
        var duplicated = fixture.bytes
        duplicated.insert(contentsOf: frameBytes, at: frame.end)
        var missing = fixture.bytes
        missing.removeSubrange(frame.start..<frame.end)
        for (label, damaged) in [("duplicated", duplicated), ("missing", missing)] {
            let fs = fixture.fileSystem(with: damaged)
            await #expect("\(label) frame") { try await openAndRead(fs) } throws: { isCorruption($0) }
            let (_, lsns) = try await openAndRead(fs, mode: .pointInTime)
            #expect(lsns == fixture.lsnsBefore(label == "duplicated" ? frame.end : frame.start), "\(label)")
        }
    }

    @Test func absurdLengthsAreRejectedBeforeAnyAllocation() async throws {
        let fixture = try await SegmentFixture.make()
        for (field, value) in [(8, UInt32.max), (8, UInt32(1 << 31)), (12, UInt32.max), (8, UInt32(fixture.bytes.count))] {
            var damaged = fixture.bytes
            damaged.setInteger(value, at: fixture.frames[2].start + field)
            await #expect { try await openAndRead(fixture.fileSystem(with: damaged)) } throws: { isCorruption($0) }
            // At the tail, the same damage is a torn frame and costs nothing.
            var tail = fixture.bytes
            tail.setInteger(value, at: fixture.frames[5].start + field)
            let (_, lsns) = try await openAndRead(fixture.fileSystem(with: tail))
            #expect(lsns == Array(1...fixture.lastLSN))
        }
    }

    @Test func checksumValidButMalformedLZ4IsRejected() async throws {
        // A frame whose CRC is right, which chains to the last frame and starts at the next LSN, but whose
        // LZ4 block is garbage (a writer bug, or a CRC collision): only the decompression check can reject it.
        let fixture = try await SegmentFixture.make(batches: [1, 1])
        let note = fixture.frames.last!
        let garbage: [UInt8] = [0xF0] + [UInt8](repeating: 0xAB, count: 63)
        var frame = [UInt8](repeating: 0, count: 40)
        FrameHeader(type: .batch, codec: .lz4Block, recordCount: 1, payloadLength: 64, rawLength: 1000,
                    firstLSN: fixture.lastLSN + 1, syncedThroughLSN: fixture.lastLSN,
                    segmentIDLow: UInt32(truncatingIfNeeded: fixture.name.segmentID),
                    previousFrameCRC: fixture.storedCRC(of: note))
            .write(into: &frame, at: 0)
        frame += garbage
        frame.setInteger(CRC32C.mask(CRC32C.checksum(Array(frame[4...]))), at: 0)
        let damaged = Array(fixture.bytes.prefix(note.end)) + frame
        let (info, lsns) = try await openAndRead(fixture.fileSystem(with: damaged))
        #expect(lsns == Array(1...fixture.lastLSN), "the undecodable frame yields nothing")
        #expect(info.repairs.map(\.kind) == [.tornTailTruncated])
        #expect(info.repairs.first?.detail.contains("LZ4 block is malformed") == true, "\(info.repairs)")
    }

    @Test func damagedSegmentFilesAreRefusedNotTrusted() async throws {
        let fixture = try await SegmentFixture.make()
        var future = fixture.bytes
        future.setInteger(UInt16(2), at: 8)
        for (label, bytes) in [("empty", []), ("header only, damaged", Array(fixture.bytes.prefix(100))), ("future version", future)] {
            await #expect("\(label)") { try await openAndRead(fixture.fileSystem(with: bytes)) } throws: { isCorruption($0) }
        }
    }

    @Test func salvageKeepsIntactRecordsAfterTheDamageUnderTheirLSNs() async throws {
        let fixture = try await SegmentFixture.make(batches: [2, 3, 2, 2])
        var damaged = fixture.bytes
        let victim = fixture.frames[1]
        damaged[victim.start + 50] ^= 0x40
        let fs = fixture.fileSystem(with: damaged)
        let journal = try Journal.open(directory: SegmentFixture.directory, options: testOptions(io: fs, segmentSize: 1 << 20, recovery: .salvage))
        let records = try journal.contents.records()
        let lost = Set(victim.lsns!)
        #expect(records.map(\.lsn) == (1...fixture.lastLSN).filter { !lost.contains($0) })
        #expect(records.allSatisfy { $0.bytes == payload(for: $0.lsn) })
        #expect(journal.recovery.repairs.map(\.kind).contains(.recordsSalvaged))
        #expect(journal.lastLSN == fixture.lastLSN, "LSNs are not reused after a salvage")
        #expect(try await journal.append(payload(for: fixture.lastLSN + 1)) == fixture.lastLSN + 1)
        try await journal.close()
        // The salvaged journal is consistent again: a strict open finds nothing to repair.
        let reopened = try Journal.open(directory: SegmentFixture.directory, options: testOptions(io: fs, segmentSize: 1 << 20))
        #expect(reopened.recovery.isClean)
        #expect(try reopened.contents.records().count == records.count + 1)
        #expect(try !reopened.contents.verify().hasCorruption)
        try await reopened.close()
    }

    /// The report said `LSNs 3…11` (the cut) and `LSNs 6…11` (salvaged, "with gap frames for the rest"): the operator
    /// had to subtract to learn which acknowledged records were gone. Both lines now name them: `lost LSNs 3…5, 8…9`.
    @Test func salvageNamesExactlyTheLSNsItLost() async throws {
        let fixture = try await SegmentFixture.make(batches: [2, 3, 2, 2, 2])
        var damaged = fixture.bytes
        damaged[fixture.frames[1].start + 50] ^= 0x40  // LSNs 3…5
        damaged[fixture.frames[3].start + 50] ^= 0x40  // LSNs 8…9
        let fs = fixture.fileSystem(with: damaged)
        let journal = try Journal.open(directory: SegmentFixture.directory, options: testOptions(io: fs, segmentSize: 1 << 20, recovery: .salvage))
        #expect(try journal.contents.records().map(\.lsn) == [1, 2, 6, 7, 10, 11])
        try await journal.close()
        let exact = [LSNRange(3...5), LSNRange(8...9)]
        let salvaged = try #require(journal.recovery.repairs.first { $0.kind == .recordsSalvaged })
        #expect(salvaged.lostRanges == exact)
        #expect(salvaged.description.contains("lost LSNs 3…5, 8…9"), "\(salvaged)")
        #expect(salvaged.description.contains("records of LSNs 6…11"), "\(salvaged)")
        let cut = try #require(journal.recovery.repairs.first { $0.kind == .corruptionTruncated })
        #expect(cut.description.contains("lost LSNs 3…5, 8…9"), "\(cut)")
        #expect(LSNRange.merged(journal.recovery.repairs.flatMap(\.lostAcknowledgedLSNs)) == exact)
        // pointInTime keeps nothing after the damage: its one range is what it lost.
        let cutOnly = fixture.fileSystem(with: damaged)
        let pointInTime = try Journal.open(directory: SegmentFixture.directory, options: testOptions(io: cutOnly, segmentSize: 1 << 20, recovery: .pointInTime))
        try await pointInTime.close()
        #expect(LSNRange.merged(pointInTime.recovery.repairs.flatMap(\.lostAcknowledgedLSNs)) == [LSNRange(3...11)])
    }

    @Test func verifyNamesTheSegmentAndOffsetWithoutRepairing() async throws {
        let fixture = try await SegmentFixture.make()
        var damaged = fixture.bytes
        damaged[fixture.frames[2].start + 44] ^= 1
        let fs = fixture.fileSystem(with: damaged)
        let report = try JournalDirectory(path: SegmentFixture.directory, io: fs).verify()
        #expect(report.hasCorruption)
        #expect(report.problems.first?.file == fixture.name.fileName)
        #expect(report.problems.first?.offset == fixture.frames[2].start)
        #expect(fs.contents(of: fixture.path) == damaged, "verify never writes")
    }
}

/// Edge cases found in review: each once silently wrong.
struct RecoveryEdgeCaseTests {
    @Test func raisingTheRecordLimitStartsANewSegmentInsteadOfOverfillingTheOldOne() async throws {
        let fs = SimulatedFileSystem()
        var small = testOptions(io: fs, segmentSize: 1 << 20)
        small.maxRecordSize = 1000
        small.maxBatchBytes = 1000
        let journal = try Journal.open(directory: "/j", options: small)
        try await appendPayloads(journal, through: 3)
        try await journal.close()
        var large = small
        large.maxRecordSize = 200_000
        large.maxBatchBytes = 200_000
        let bigger = try Journal.open(directory: "/j", options: large)
        _ = try await bigger.append([UInt8](repeating: 7, count: 150_000))
        try await bigger.close()
        let again = try Journal.open(directory: "/j", options: small)
        #expect(again.recovery.isClean, "frames larger than the old segment's limit went to a new segment")
        #expect(try again.contents.records().last?.bytes.count == 150_000)
        try await again.close()
    }

    /// A tail torn below the latest checkpoint was acknowledged: `export` refuses the segment as corruption, as
    /// `verify` calls it. It exported the records before the tear and said "an unacknowledged torn tail was left out".
    @Test func exportRefusesATailTornBelowTheCheckpoint() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        try await appendPayloads(journal, through: 10)
        try await journal.writeCheckpoint([1], at: 10)
        try await journal.close()
        let directory = JournalDirectory(path: "/j", io: fs)
        let name = try directory.segments()[0]
        let bytes = try #require(fs.contents(of: "/j/" + name.fileName))
        let offset = SegmentFixture.frames(in: bytes, name: name)[8].start
        fs.setContents(Array(bytes[..<(offset + 20)]), of: "/j/" + name.fileName)  // LSN 9's frame torn
        #expect(try directory.verify().problems.contains { $0.severity == .corruption && $0.detail.contains("past the journal's last intact LSN 8") })
        #expect { try directory.exportSegment(name, to: "/export.lz4") } throws: {
            isCorruption($0) && "\($0)".contains("vouches for LSNs 9…10")
        }
    }

    /// Compaction keeps two checkpoints: a cut before both must set both aside. Only the newest was, and the next
    /// open loaded the older one, past the journal's end, over LSNs the writer had given to new records.
    @Test func bothCheckpointsBeyondTheSurvivingJournalAreSetAside() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        try await appendPayloads(journal, through: 10)
        try await journal.writeCheckpoint([1], at: 7)
        try await journal.writeCheckpoint([2], at: 10)
        try await journal.close()
        let name = try JournalDirectory(path: "/j", io: fs).segments()[0]
        var bytes = try #require(fs.contents(of: "/j/" + name.fileName))
        bytes[SegmentFixture.frames(in: bytes, name: name)[4].start + 41] ^= 0xFF  // LSN 5
        fs.setContents(bytes, of: "/j/" + name.fileName)
        let (info, lsns) = try await openAndRead(fs, mode: .pointInTime)
        #expect(lsns == [1, 2, 3, 4] && info.checkpointLSN == nil)
        #expect(info.repairs.filter { $0.kind == .checkpointQuarantined }.map(\.lostLSNs) == [LSNRange(5...10), LSNRange(5...7)], "\(info.repairs)")

        let reopened = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        try await appendPayloads(reopened, through: 10)
        try await reopened.close()
        let strict = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        #expect(strict.recovery.isClean && strict.latestCheckpoint == nil, "\(strict.recovery.repairs)")
        #expect(try verifiedLSNs(strict.contents) == Array(1...10))
        try await strict.close()
    }

    @Test func aCheckpointBeyondTheSurvivingJournalIsSetAsideOutsideStrictMode() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        try await appendPayloads(journal, through: 10)
        try await journal.writeCheckpoint([1], at: 10)
        try await journal.close()
        // Damage LSN 5's frame: pointInTime keeps 1…4, and the checkpoint at 10 no longer has a journal under it.
        let name = try JournalDirectory(path: "/j", io: fs).segments()[0]
        var bytes = try #require(fs.contents(of: "/j/" + name.fileName))
        let fixtureFrames = SegmentScanner().scan(bytes, name: name)
        #expect(fixtureFrames.isIntact)
        let offset = SegmentFixture.frames(in: bytes, name: name)[4].start
        bytes[offset + 41] ^= 0xFF
        fs.setContents(bytes, of: "/j/" + name.fileName)
        await #expect { try await openAndRead(fs) } throws: { isCorruption($0) }
        // `verify` says so too: the checkpoint vouches for LSNs the surviving journal does not have.
        let verified = try JournalDirectory(path: "/j", io: fs).verify()
        #expect(verified.problems.contains { $0.severity == .corruption && $0.detail.contains("past the journal's last intact LSN 4") },
                "\(verified.problems)")
        let (info, lsns) = try await openAndRead(fs, mode: .pointInTime)
        #expect(lsns == [1, 2, 3, 4])
        #expect(info.checkpointLSN == nil)
        #expect(info.repairs.contains { $0.kind == .checkpointQuarantined && $0.lostLSNs == LSNRange(5...10) })
        #expect(info.repairs.contains { $0.kind == .corruptionTruncated && $0.lostLSNs == LSNRange(5...10) }, "\(info.repairs)")
    }

    @Test func aChecksumValidGapFrameWithAnAbsurdCountDoesNotTrap() async throws {
        // Chained to the last frame and at the next LSN, so only the gap-count bound stands between the
        // count and an overflowing `nextLSN += count`.
        let fixture = try await SegmentFixture.make(batches: [1, 1])
        var frame = [UInt8](repeating: 0, count: 40)
        FrameHeader(type: .gap, codec: .raw, recordCount: 0, payloadLength: 8, rawLength: 8,
                    firstLSN: fixture.lastLSN + 1, syncedThroughLSN: fixture.lastLSN,
                    segmentIDLow: UInt32(truncatingIfNeeded: fixture.name.segmentID),
                    previousFrameCRC: fixture.storedCRC(of: fixture.frames.last!))
            .write(into: &frame, at: 0)
        frame.appendInteger(UInt64.max)
        frame.setInteger(CRC32C.mask(CRC32C.checksum(Array(frame[4...]))), at: 0)
        let (info, lsns) = try await openAndRead(fixture.fileSystem(with: fixture.bytes + frame))
        #expect(lsns == Array(1...fixture.lastLSN))
        #expect(info.repairs.first?.detail.contains("gap frame with an impossible count") == true, "\(info.repairs)")
    }

    /// Found by scripts/fuzz (Fixtures/fuzz/frame-scanner/crash-absurd-lsn-after-damage): after damage,
    /// recovery looks for intact frames to report lost LSNs and to salvage. A checksum-valid batch frame
    /// claiming LSNs near 2^64 there must be ignored, not overflow `firstLSN + index`.
    @Test(arguments: [JournalOptions.RecoveryMode.pointInTime, .salvage])
    func anIntactFrameWithAnAbsurdLSNAfterDamageIsIgnored(_ mode: JournalOptions.RecoveryMode) async throws {
        let fixture = try await SegmentFixture.make(batches: [1, 1, 1])
        var damaged = fixture.bytes
        damaged[fixture.frames[1].start + 45] ^= 0x01  // acknowledged data: the second batch
        let absurd = FrameEncoder(segmentIDLow: UInt32(truncatingIfNeeded: fixture.name.segmentID), compressionThreshold: 1 << 20)
            .batch([payload(for: 1), payload(for: 2)][...], firstLSN: UInt64.max - 1, syncedThroughLSN: 0, previousFrameCRC: 0)
        let fs = fixture.fileSystem(with: damaged + absurd.bytes)
        let journal = try Journal.open(directory: SegmentFixture.directory, options: testOptions(io: fs, segmentSize: 1 << 20, recovery: mode))
        let records = try journal.contents.records()
        try await journal.close()
        // pointInTime keeps LSN 1; salvage also re-appends the intact LSN 3. Nothing from the absurd frame.
        #expect(records.map(\.lsn) == (mode == .salvage ? [1, 3] : [1]))
        #expect(records.allSatisfy { $0.bytes == payload(for: $0.lsn) })
        #expect(journal.recovery.repairs.contains { $0.kind == .corruptionTruncated }, "\(journal.recovery.repairs)")
    }
}
