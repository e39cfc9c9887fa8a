import Foundation
import Testing

@testable import KeijiJournal

/// The journal on a disk that fills up: an append is reported failed exactly when its records are not in the
/// journal, the zeros written ahead of the frames are never what stops it, and a segment it cannot create leaves
/// no file behind.
struct FullDiskTests {
    static let directory = "/j"

    /// A disk with room for `room` bytes of each journal file: a write past that writes what fits, then fails with
    /// ENOSPC, as `pwrite` does.
    func fill(_ fs: SimulatedFileSystem, leavingRoomFor room: Int) {
        fs.inject { operation in
            guard case .write(_, let offset, let count) = operation, offset + count > room else { return nil }
            return .partialWrite(max(0, room - offset), ENOSPC)
        }
    }

    /// Appends records (up to 700 bytes) until one fails; returns the LSNs acknowledged and the error.
    func appendUntilFailure(_ journal: Journal) async -> (acknowledged: [UInt64], error: JournalError?) {
        var acknowledged: [UInt64] = []
        for lsn in UInt64(1)...200 {
            do {
                acknowledged.append(try await journal.append(payload(for: lsn)))
            } catch {
                return (acknowledged, error as? JournalError)
            }
        }
        return (acknowledged, nil)
    }

    /// What the next open replays, from what was synced and from everything written (the page cache survived).
    func recovered(_ fs: SimulatedFileSystem, _ options: JournalOptions) async throws -> [[UInt64]] {
        var found: [[UInt64]] = []
        for image in fs.crashImages(seed: 7, count: 2) {
            var options = options
            options.io = image
            let journal = try Journal.open(directory: Self.directory, options: options)
            found.append(try verifiedLSNs(journal.contents))
            try await journal.close()
        }
        return found
    }

    /// The tester's case: the frames fitted, the next chunk of zeros after them did not; the append was reported
    /// failed and the next start replayed it. Now the append succeeds, and the journal goes on until the records
    /// themselves do not fit.
    @Test func aChunkOfZerosThatDoesNotFitFailsNoAppend() async throws {
        let fs = SimulatedFileSystem()
        var options = testOptions(io: fs, segmentSize: 1 << 20, preallocation: 8192)
        let journal = try Journal.open(directory: Self.directory, options: options)
        let room = 8192 + 3000  // the first chunk is written; the second does not fit, frames do for a while
        fill(fs, leavingRoomFor: room)
        let (acknowledged, error) = await appendUntilFailure(journal)
        #expect(error?.code == .failed && error?.errno == ENOSPC, "\(String(describing: error))")
        try await journal.close()
        fs.inject(nil)

        let name = try #require(try journal.contents.segments().last)
        let file = try #require(fs.contents(of: Self.directory + "/" + name.fileName))
        let framesEnd = SegmentScanner().scan(file, name: name).validEnd
        #expect(framesEnd > 8192, "appends went on past the chunk of zeros that did not fit: frames end at \(framesEnd)")
        #expect(framesEnd + 760 > room, "they stopped only when a record did not fit: frames end at \(framesEnd) of \(room)")
        #expect(file.count == framesEnd, "the zeros that did not fit and the failed frames are given back: \(file.count - framesEnd) bytes more")
        options.io = fs
        for lsns in try await recovered(fs, options) {
            #expect(lsns == acknowledged, "the failed append is not in the journal, every acknowledged one is")
        }
    }

    /// A fresh workspace saved nothing, not even a one-byte record, with less than the first chunk (1 MiB) free.
    @Test func aNewJournalNeedsRoomForItsHeaderNotAChunk() async throws {
        let fs = SimulatedFileSystem()
        fill(fs, leavingRoomFor: SegmentHeader.size + 1000)
        var options = testOptions(io: fs, segmentSize: 1 << 20, preallocation: 1 << 16)
        let journal = try Journal.open(directory: Self.directory, options: options)
        #expect(try await journal.append(payload(for: 1)) == 1)
        try await journal.close()
        fs.inject(nil)
        options.io = fs
        for lsns in try await recovered(fs, options) { #expect(lsns == [1]) }
        let reopened = try Journal.open(directory: Self.directory, options: options)
        #expect(reopened.recovery.isClean, "\(reopened.recovery.repairs)")
        _ = try await reopened.append(payload(for: 2))
        try await reopened.close()
    }

    /// A batch written as several frames in one `pwrite` that fails part-way: its first frames are whole on disk,
    /// and the next open replayed them though the append was reported failed.
    @Test func aBatchWhoseWriteFailsPartWayLeavesNoneOfItsRecords() async throws {
        let fs = SimulatedFileSystem()
        var options = testOptions(io: fs, segmentSize: 1 << 20)
        let journal = try Journal.open(directory: Self.directory, options: options)
        _ = try await journal.append(payload(for: 1))
        fs.inject { operation in
            guard case .write(_, _, let count) = operation, count > 1000 else { return nil }
            return .partialWrite(count - 16, ENOSPC)  // the last frame torn, the others whole
        }
        await #expect { try await journal.append(contentsOf: (UInt64(2)...4).map { payload(for: $0, size: 40_000) }) }
            throws: { ($0 as? JournalError)?.errno == ENOSPC }
        try await journal.close()
        fs.inject(nil)
        options.io = fs
        for lsns in try await recovered(fs, options) { #expect(lsns == [1]) }
    }

    /// A segment the journal cannot create (no room for its header) leaves no `.tmp` behind, at the first open and
    /// at a roll alike: it filled what was left of the disk, and the next open reported removing it as a repair.
    @Test func aSegmentThatCannotBeCreatedLeavesNoFile() async throws {
        let fs = SimulatedFileSystem()
        let options = testOptions(io: fs, segmentSize: 1 << 20, preallocation: 1 << 16)
        func temporaryFiles() -> [String] { fs.fileNames(in: Self.directory).filter { $0.hasSuffix(".tmp") } }
        fill(fs, leavingRoomFor: 1000)
        #expect(throws: JournalError.self) { try Journal.open(directory: Self.directory, options: options) }
        #expect(temporaryFiles() == [])
        fs.inject(nil)

        let journal = try Journal.open(directory: Self.directory, options: options)
        #expect(journal.recovery.repairs.isEmpty, "\(journal.recovery.repairs)")
        _ = try await journal.append(payload(for: 1))
        fs.inject { operation in
            guard case .write(let path, _, _) = operation, path.hasSuffix(".jnl.tmp") else { return nil }
            return .partialWrite(1000, EFBIG)  // `ulimit -f`
        }
        await #expect { try await journal.roll() } throws: { ($0 as? JournalError)?.errno == EFBIG }
        try await journal.close()
        #expect(temporaryFiles() == [])
        fs.inject(nil)

        let reopened = try Journal.open(directory: Self.directory, options: options)
        #expect(reopened.recovery.repairs.isEmpty, "\(reopened.recovery.repairs)")
        #expect(try verifiedLSNs(reopened.contents) == [1])
        try await reopened.close()
    }

    /// One line naming the file and the reason, once: a full disk was "the journal stopped after an I/O error and must
    /// be reopened: 'pwrite' failed on fd 11 (errno 28: No space left on device) (errno 28: No space left on device)".
    @Test func aFailureNamesTheFileAndTheReasonOnce() async throws {
        let fs = SimulatedFileSystem()
        let options = testOptions(io: fs, segmentSize: 1 << 20)
        let journal = try Journal.open(directory: Self.directory, options: options)
        _ = try await journal.append(payload(for: 1))
        fill(fs, leavingRoomFor: 0)
        let segment = Self.directory + "/seg-00000000000000000001-0000000000000001.jnl"
        let expected = "cannot append to the journal (\(segment)): No space left on device"
        for _ in 1...2 {  // the append that failed, and a later one
            await #expect { try await journal.append(payload(for: 2)) } throws: { error in
                (error as? JournalError).map { "\($0)" == expected && $0.code == .failed && $0.errno == ENOSPC } == true
            }
        }
        try await journal.close()

        let empty = SimulatedFileSystem()
        empty.inject { operation in if case .write = operation { .fail(ENOSPC) } else { nil } }
        #expect { try Journal.open(directory: Self.directory, options: testOptions(io: empty)) } throws: { error in
            "\(error)" == "cannot create the journal segment (\(segment).tmp): No space left on device"
        }
        #expect { try PosixJournalIO().open("/nonexistent-keiji/file", mode: .readOnly) } throws: { error in
            "\(error)" == "'open' failed on /nonexistent-keiji/file: No such file or directory"
        }
    }
}

