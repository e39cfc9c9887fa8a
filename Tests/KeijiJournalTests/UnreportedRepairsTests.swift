import Foundation
import Testing

@testable import KeijiJournal

/// Every repair an open makes reaches the next recovery report, whichever process opened the journal: a CLI
/// command's or a compaction's open, or a strict open that repairs and then refuses. The journal keeps them in
/// `unreported-repairs.json` until ``Journal/markRepairsReported()``.
struct UnreportedRepairsTests {
    @Test func aTornTailCutByOneOpenIsKeptForTheNextUntilReported() async throws {
        let fixture = try await SegmentFixture.make()
        let fs = fixture.fileSystem(with: fixture.bytes + [UInt8](repeating: 0xAB, count: 96))
        let (cut, _) = try await openAndRead(fs)
        #expect(cut.repairs.map(\.kind) == [.tornTailTruncated])

        let next = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        #expect(next.recovery.isClean)
        let earlier = try #require(next.earlierRepairs.first)
        #expect(next.earlierRepairs.count == 1 && earlier.repair == cut.repairs[0] && !earlier.openRefused && earlier.mode == .strict)
        #expect(earlier.description.hasPrefix("done by an earlier open (") && earlier.description.contains("tornTailTruncated"))
        try next.markRepairsReported()
        try await next.close()

        let reported = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        #expect(reported.earlierRepairs.isEmpty, "listed by a report, so forgotten")
        try await reported.close()
    }

    /// A record that cannot be written (a full disk) does not fail the open whose repair is already on disk: failing
    /// it left nothing to repair at the next open, and the record was lost anyway. The open still has its repairs.
    @Test func anOpenWhoseRecordOfRepairsCannotBeWrittenStillOpens() async throws {
        let fixture = try await SegmentFixture.make()
        let fs = fixture.fileSystem(with: fixture.bytes + [UInt8](repeating: 0xAB, count: 96))
        fs.inject { operation in
            if case .create(let path) = operation, path.contains("unreported-repairs") { return .fail(ENOSPC) }
            return nil
        }
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        #expect(journal.recovery.repairs.map(\.kind) == [.tornTailTruncated])
        try await journal.close()
    }

    @Test func aStrictOpenThatRepairsThenRefusesRecordsWhatItDid() async throws {
        let fixture = try await SegmentFixture.make()
        var damaged = fixture.bytes
        damaged[fixture.frames[1].start + FrameHeader.size] ^= 0x01  // acknowledged: later frames vouch for it
        let fs = fixture.fileSystem(with: damaged)
        let checkpoint = CheckpointFile.fileName(lsn: 2)
        fs.setContents(Array("not a checkpoint".utf8), of: "/j/" + checkpoint)

        let refusal = try #require(throws: JournalError.self) { try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20)) }
        #expect(refusal.code == .corruption)
        #expect(refusal.message.contains("Before refusing, this open repaired the journal: checkpointQuarantined: \(checkpoint)"), "\(refusal)")
        #expect(fs.contents(of: "/j/" + checkpoint + ".broken") != nil, "the refusing open did set it aside")

        let (info, _) = try await openAndRead(fs, mode: .pointInTime)
        #expect(info.repairs.map(\.kind) == [.corruptionTruncated], "the checkpoint is not set aside twice")
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        #expect(journal.earlierRepairs.map(\.repair.kind) == [.checkpointQuarantined, .corruptionTruncated])
        #expect(journal.earlierRepairs.map(\.openRefused) == [true, false])
        #expect(journal.earlierRepairs.map(\.mode) == [.strict, .pointInTime])
        try await journal.close()
    }
}
