import Foundation
import Testing

@testable import KeijiJournal

/// Journals committed under Fixtures/journal/ pin the on-disk format: a change that alters a single byte of
/// what the journal writes fails here. `KEIJI_REGENERATE_FIXTURES=1 swift test --filter GoldenFixture`
/// rewrites them after an intended format change (and docs/journal-format.md must change with them); that run fails,
/// so it never passes by comparing the writer with what it just wrote. Serialized: regenerating rewrites the folders
/// the other tests copy.
///
/// - valid/: two segments (one sealed), a checkpoint, a clean close; 12 scheduler-like records.
/// - torn/: valid/ with its last batch cut mid-frame, as a crash during the write leaves it.
/// - corrupted/: valid/ with one bit flipped inside an acknowledged batch of the first segment.
@Suite(.serialized)
struct GoldenFixtureTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/journal").path

    static func record(_ lsn: UInt64) -> [UInt8] {
        let kinds = ["run.started", "run.finished", "task.saved"]
        return Array(#"{"type":"\#(kinds[Int(lsn % 3)])","task":"backup-\#(lsn % 4)","slot":"2026-11-23T04:\#(10 + lsn):00Z","lsn":\#(lsn)}"#.utf8)
    }

    /// Writes the valid journal deterministically (fixed clock, fixed batches) into `directory`.
    static func writeValid(to directory: String) async throws {
        var options = JournalOptions()
        options.preallocationBytes = 0  // the fixtures pin the plain layout; PreallocationTests cover the other
        options.segmentSize = 4096 + 600
        options.idleNoteDelay = nil
        options.compressionThreshold = 256
        options.now = { 1_795_000_000_000_000_000 }
        let journal = try Journal.open(directory: directory, options: options)
        for lsn in UInt64(1)...4 { _ = try await journal.append(record(lsn)) }
        _ = try await journal.append(contentsOf: (UInt64(5)...8).map(record))
        try await journal.writeCheckpoint(Array(#"{"tasks":4,"through":6}"#.utf8), at: 6)
        _ = try await journal.append(contentsOf: (UInt64(9)...12).map(record))
        try await journal.close()
    }

    static func files(in directory: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name != "LOCK" {
            files[name] = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
        }
        return files
    }

    /// A private copy of a fixture directory (recovery writes).
    static func copy(_ fixture: String) throws -> TemporaryDirectory {
        let temporary = TemporaryDirectory("golden")
        for (name, bytes) in try files(in: root + "/" + fixture) {
            try Data(bytes).write(to: URL(fileURLWithPath: temporary.path + "/" + name))
        }
        return temporary
    }

    @Test func theWriterStillProducesTheCommittedBytes() async throws {
        let fresh = TemporaryDirectory("golden-fresh")
        defer { fresh.remove() }
        try await Self.writeValid(to: fresh.path)
        let produced = try Self.files(in: fresh.path)
        if ProcessInfo.processInfo.environment["KEIJI_REGENERATE_FIXTURES"] == "1" {
            try regenerate(from: produced)
            Issue.record("fixtures regenerated: review the diff, then run the tests again without KEIJI_REGENERATE_FIXTURES")  // compared with itself below, it would pass
        }
        let committed = try Self.files(in: Self.root + "/valid")
        #expect(committed.keys.sorted() == produced.keys.sorted())
        for (name, bytes) in committed {
            #expect(produced[name] == bytes, "\(name) differs from the committed fixture: the on-disk format changed")
        }
    }

    @Test func validFixtureOpensCleanly() async throws {
        let directory = try Self.copy("valid")
        defer { directory.remove() }
        var options = JournalOptions()
        options.preallocationBytes = 0  // the fixtures pin the plain layout; PreallocationTests cover the other
        options.segmentMaxAge = nil  // the fixture's segments are days old: an age roll would add a segment
        let journal = try Journal.open(directory: directory.path, options: options)
        #expect(journal.recovery.isClean && journal.recovery.cleanShutdown)
        #expect(journal.recovery.lastLSN == 12 && journal.latestCheckpoint?.lsn == 6)
        let records = try journal.contents.records()
        #expect(records.map(\.lsn) == Array(1...12))
        #expect(records.allSatisfy { $0.bytes == Self.record($0.lsn) })
        #expect(try journal.contents.segments().count == 2)
        try await journal.close()
    }

    @Test func tornFixtureLosesOnlyTheTornBatch() async throws {
        let directory = try Self.copy("torn")
        defer { directory.remove() }
        #expect(try JournalDirectory(path: directory.path).verify().problems.map(\.severity) == [.tornTail])
        let journal = try Journal.open(directory: directory.path)
        #expect(journal.recovery.repairs.map(\.kind) == [.tornTailTruncated])
        #expect(journal.recovery.repairs.first?.lostLSNs == LSNRange(9...12))
        #expect(try journal.contents.records().map(\.lsn) == Array(1...8))
        try await journal.close()
    }

    @Test func corruptedFixtureIsRefusedInStrictModeAndNamesTheSpot() async throws {
        let directory = try Self.copy("corrupted")
        defer { directory.remove() }
        let report = try JournalDirectory(path: directory.path).verify()
        let problem = try #require(report.problems.first)
        #expect(problem.severity == .corruption && problem.file.hasPrefix("seg-00000000000000000001-"))
        do {
            _ = try Journal.open(directory: directory.path)
            Issue.record("strict mode must refuse a corrupted journal")
        } catch let error as JournalError {
            #expect(error.code == .corruption)
            #expect(error.message.contains(problem.file) && error.message.contains("offset \(problem.offset)"))
        }
        var options = JournalOptions()
        options.preallocationBytes = 0  // the fixtures pin the plain layout; PreallocationTests cover the other
        options.recoveryMode = .pointInTime
        let journal = try Journal.open(directory: directory.path, options: options)
        let kept = try journal.contents.records()
        #expect(kept.allSatisfy { $0.bytes == Self.record($0.lsn) } && kept.count < 12)
        try await journal.close()
    }

    /// Rewrites Fixtures/journal from a freshly written valid journal.
    private func regenerate(from produced: [String: [UInt8]]) throws {
        let fm = FileManager.default
        for fixture in ["valid", "torn", "corrupted"] {
            let path = Self.root + "/" + fixture
            try? fm.removeItem(atPath: path)
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            for (name, bytes) in produced {
                var bytes = bytes
                let segment = SegmentName(fileName: name)
                if fixture == "torn", segment?.baseLSN != 1, segment != nil {
                    // Cut the last batch (LSNs 9…12) in the middle of its payload.
                    let scan = SegmentScanner().scan(bytes, name: segment!)
                    #expect(scan.isIntact)
                    bytes = Array(bytes.prefix(lastBatchStart(bytes, segment!) + 60))
                }
                if fixture == "corrupted", segment?.baseLSN == 1 {
                    bytes[SegmentHeader.size + 44] ^= 0x04  // inside the first batch's payload
                }
                try Data(bytes).write(to: URL(fileURLWithPath: path + "/" + name))
            }
        }
    }

    private func lastBatchStart(_ bytes: [UInt8], _ name: SegmentName) -> Int {
        var offset = SegmentHeader.size
        var lastBatch = offset
        bytes.withUnsafeBytes { buffer in
            while case .success(let frame) = FrameHeader.parse(buffer, at: offset, segmentIDLow: UInt32(name.segmentID), maxPayload: 1 << 20) {
                if frame.type == .batch { lastBatch = offset }
                offset += frame.frameSize
            }
        }
        return lastBatch
    }
}
