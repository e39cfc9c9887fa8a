import Synchronization
import Testing

@testable import KeijiJournal

/// Segments the writer fills with zeros ahead of its frames (`JournalOptions.preallocationBytes`): the zeros
/// after the last frame are unused space, a reopen continues into them without a repair, the file's size
/// changes once a chunk, and a sealed segment keeps none of them. The crash, truncation and bit-flip tests
/// run on such segments too (their preallocated variants).
struct PreallocationTests {
    static let directory = "/j"

    func segmentBytes(_ fs: SimulatedFileSystem, _ journal: Journal) throws -> [[UInt8]] {
        try journal.contents.segments().map { fs.contents(of: Self.directory + "/" + $0.fileName)! }
    }

    @Test func aReopenedSegmentWritesIntoItsZerosWithoutARepair() async throws {
        let fs = SimulatedFileSystem()
        let options = testOptions(io: fs, segmentSize: 1 << 20, preallocation: 8192)
        let journal = try Journal.open(directory: Self.directory, options: options)
        for lsn in UInt64(1)...3 { _ = try await journal.append(payload(for: lsn)) }
        try await journal.close()
        let written = try #require(try segmentBytes(fs, journal).first)
        #expect(written.count == 8192, "the header and the first frames in one chunk of zeros")
        #expect(try #require(try? SegmentHeader.decode(written).get()).isPreallocated)

        let reopened = try Journal.open(directory: Self.directory, options: options)
        #expect(reopened.recovery.repairs.isEmpty && reopened.recovery.cleanShutdown, "\(reopened.recovery.repairs)")
        for lsn in UInt64(4)...5 { _ = try await reopened.append(payload(for: lsn)) }
        try await reopened.close()
        #expect(try segmentBytes(fs, reopened).map(\.count) == [8192], "the new frames went into the zeros")
        let stats = try reopened.contents.stats()  // what `keiji journal stats` prints
        #expect(stats.totalBytes == 8192 && stats.preallocatedBytes > 0 && stats.preallocatedBytes < 8192 - SegmentHeader.size)

        let last = try Journal.open(directory: Self.directory, options: options)
        #expect(last.recovery.isClean)
        #expect(try verifiedLSNs(last.contents) == Array(1...5))
        #expect(try last.contents.verify().problems.isEmpty)
        try await last.close()
    }

    @Test func theFileGrowsOneChunkAtATimeAndNeverPastTheSegmentSize() async throws {
        let fs = SimulatedFileSystem()
        let segmentSize = 4096 + 3000
        let journal = try Journal.open(directory: Self.directory, options: testOptions(io: fs, segmentSize: segmentSize, preallocation: 1024))
        var sizes: Set<Int> = []
        for lsn in UInt64(1)...40 {
            _ = try await journal.append(payload(for: lsn))
            let name = try #require(try journal.contents.segments().last)
            let active = try #require(fs.contents(of: Self.directory + "/" + name.fileName))
            let scan = SegmentScanner().scan(active, name: name)
            sizes.insert(active.count)
            #expect(scan.isIntact && scan.validEnd + scan.preallocatedBytes == active.count)
            if active.count > segmentSize {
                #expect(scan.preallocatedBytes == 0, "zeros past the segment size: \(scan.preallocatedBytes)")  // frames that cross it
            } else {
                #expect(active.count % 1024 == 0 || active.count == segmentSize, "a size between chunks: \(active.count)")
            }
        }
        try await journal.close()
        #expect(try segmentBytes(fs, journal).count > 1, "the workload rolls")
        #expect(sizes.count > 2, "the file grew in several steps: \(sizes.sorted())")
    }

    /// A segment rolled by age (the hourly roll of a quiet journal) is truncated after its seal: a segment
    /// that reached its size holds no zeros to begin with.
    @Test func aSegmentRolledByAgeKeepsNoZeros() async throws {
        let fs = SimulatedFileSystem()
        let clock = Mutex<UInt64>(1_800_000_000_000_000_000)
        var options = testOptions(io: fs, segmentSize: 1 << 20, preallocation: 8192)
        options.segmentMaxAge = .seconds(60)
        options.now = { clock.withLock { $0 } }
        let journal = try Journal.open(directory: Self.directory, options: options)
        for lsn in UInt64(1)...2 { _ = try await journal.append(payload(for: lsn)) }
        clock.withLock { $0 += 61_000_000_000 }
        _ = try await journal.append(payload(for: 3))  // the roll follows this batch
        _ = try await journal.append(payload(for: 4))
        try await journal.close()
        let names = try journal.contents.segments()
        #expect(names.count == 2, "\(names.map(\.fileName))")
        let sealed = try #require(fs.contents(of: Self.directory + "/" + names[0].fileName))
        let scan = SegmentScanner().scan(sealed, name: names[0])
        #expect(scan.sealed && scan.isIntact && scan.validEnd == sealed.count, "\(sealed.count - scan.validEnd) bytes after the seal")
        let active = try #require(fs.contents(of: Self.directory + "/" + names[1].fileName))
        #expect(active.count == 8192 && SegmentScanner().scan(active, name: names[1]).preallocatedBytes > 0)
        let reopened = try Journal.open(directory: Self.directory, options: options)
        let lsns = try verifiedLSNs(reopened.contents)
        #expect(reopened.recovery.isClean && lsns == Array(1...4))
        try await reopened.close()
    }

    /// A journal written before preallocation (segments without the flag), opened with it on: its tail
    /// grows frame by frame as before (zeros there would be a torn tail), and the next segment preallocates.
    @Test func aTailWrittenWithoutTheFlagIsContinuedWithoutZeros() async throws {
        let fs = SimulatedFileSystem()
        let old = try Journal.open(directory: Self.directory, options: testOptions(io: fs, segmentSize: 1 << 20))
        for lsn in UInt64(1)...2 { _ = try await old.append(payload(for: lsn)) }
        try await old.close()

        let options = testOptions(io: fs, segmentSize: 1 << 20, preallocation: 8192)
        let continued = try Journal.open(directory: Self.directory, options: options)
        #expect(continued.recovery.repairs.isEmpty)
        for lsn in UInt64(3)...4 { _ = try await continued.append(payload(for: lsn)) }
        try await continued.close()
        let first = try #require(try continued.contents.segments().first)
        let grown = try #require(fs.contents(of: Self.directory + "/" + first.fileName))
        #expect(SegmentScanner().scan(grown, name: first).validEnd == grown.count, "no zeros after the frames of a segment without the flag")

        let journal = try Journal.open(directory: Self.directory, options: options)
        #expect(journal.recovery.isClean, "\(journal.recovery.repairs)")
        try await journal.roll()
        _ = try await journal.append(payload(for: 5))
        try await journal.close()
        let names = try journal.contents.segments()
        let tail = try #require(fs.contents(of: Self.directory + "/" + names[0].fileName))
        let scan = SegmentScanner().scan(tail, name: names[0])
        #expect(scan.header?.isPreallocated == false && scan.isIntact && scan.validEnd == tail.count, "\(tail.count - scan.validEnd) bytes after its frames")
        let next = try #require(fs.contents(of: Self.directory + "/" + names[1].fileName))
        #expect(SegmentScanner().scan(next, name: names[1]).header?.isPreallocated == true && next.count == 8192)

        let reopened = try Journal.open(directory: Self.directory, options: options)
        let lsns = try verifiedLSNs(reopened.contents)
        #expect(reopened.recovery.isClean && lsns == Array(1...5))
        try await reopened.close()
    }

    /// An open journal's records are read from its active segment only up to the end of its frames: the zeros
    /// after them are not read again (recovery has checked them), and records appended after `contents` was
    /// taken are not handed out.
    @Test func anOpenJournalsRecordsAreReadWithoutItsZeros() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: Self.directory, options: testOptions(io: fs, segmentSize: 1 << 20, preallocation: 1 << 16))
        for lsn in UInt64(1)...5 { _ = try await journal.append(payload(for: lsn)) }
        let contents = journal.contents
        _ = try await journal.append(payload(for: 6))
        let name = try #require(try contents.segments().last)
        let file = try #require(fs.contents(of: Self.directory + "/" + name.fileName))
        let frames = SegmentScanner().scan(file, name: name).validEnd
        #expect(file.count == 1 << 16 && frames < file.count / 4, "one chunk of zeros after a few frames: \(frames) of \(file.count) bytes")

        let before = fs.bytesRead
        #expect(try verifiedLSNs(contents) == Array(1...5))
        let read = fs.bytesRead - before
        #expect(read < frames, "\(read) bytes read for frames ending at \(frames)")
        #expect(try verifiedLSNs(journal.contents) == Array(1...6))
        try await journal.close()
        #expect(try verifiedLSNs(journal.contents) == Array(1...6))
    }

    @Test func onTheRealFileSystemTheDefaultChunkIsWrittenWithTheHeader() async throws {
        let directory = TemporaryDirectory("prealloc")
        defer { directory.remove() }
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: directory.path, options: options)
        _ = try await journal.append(payload(for: 1))
        try await journal.close()
        let name = try #require(try journal.contents.segments().first)
        let bytes = try PosixJournalIO().readAll(directory.path + "/" + name.fileName)
        #expect(bytes.count == options.preallocationBytes)
        let reopened = try Journal.open(directory: directory.path, options: options)
        #expect(reopened.recovery.repairs.isEmpty)
        #expect(try verifiedLSNs(reopened.contents) == [1])
        try await reopened.close()
    }

    /// A repair counts the frames it cut, not the zeros ahead of them: a `pointInTime` cut of a few frames of a
    /// preallocated segment was reported (and exported as `keiji_recovery_bytes_repaired`) as its whole MiB.
    @Test func aRepairCountsTheFramesItCutNotTheZerosAhead() async throws {
        let fs = SimulatedFileSystem()
        var options = testOptions(io: fs, segmentSize: 4 << 20, preallocation: 1 << 20)
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: Self.directory, options: options)
        for lsn in UInt64(1)...6 { _ = try await journal.append(payload(for: lsn)) }
        try await journal.close()
        let name = try #require(try journal.contents.segments().first)
        let path = Self.directory + "/" + name.fileName
        var bytes = try #require(fs.contents(of: path))
        #expect(bytes.count == 1 << 20)
        let framesEnd = SegmentScanner().scan(bytes, name: name).validEnd

        // A torn tail: garbage in the zeros after the last frame.
        bytes.replaceSubrange(framesEnd..<(framesEnd + 20), with: [UInt8](repeating: 0xAB, count: 20))
        fs.setContents(bytes, of: path)
        let torn = try Journal.open(directory: Self.directory, options: options)
        #expect(torn.recovery.repairs.map(\.kind) == [.tornTailTruncated])
        #expect(torn.recovery.bytesRepaired == 24, "20 bytes of garbage, to the frame alignment: \(torn.recovery.repairs)")
        try await torn.close()

        // Acknowledged damage in the first frame, cut with pointInTime: the frames from it on, not the zeros.
        let segments = try torn.contents.segments()
        let first = try #require(segments.first)
        var damaged = try #require(fs.contents(of: Self.directory + "/" + first.fileName))
        let frames = SegmentScanner().scan(damaged, name: first).validEnd - SegmentHeader.size
        damaged[SegmentHeader.size + FrameHeader.size] ^= 0x01
        fs.setContents(damaged, of: Self.directory + "/" + first.fileName)
        options.recoveryMode = .pointInTime
        let cut = try Journal.open(directory: Self.directory, options: options)
        let repair = try #require(cut.recovery.repairs.first { $0.kind == .corruptionTruncated })
        #expect(repair.bytes == frames, "\(cut.recovery.repairs)")
        #expect(cut.recovery.repairs.allSatisfy { $0.bytes < 64 << 10 }, "no MiB of zeros counted: \(cut.recovery.repairs)")
        try await cut.close()
    }
}
