/// Writes frames into the active segment and rolls to new segments.
///
/// Used by one thread at a time, the group committer's leader (a caller or the writer thread): no locking
/// inside. The committer decides when batches are synced; the writer syncs on its own only where the format
/// requires it (a continued tail before it is vouched for, a note, a seal before the next segment exists, a
/// new segment's header before its rename).
final class SegmentWriter {
    let io: any JournalIO
    let directory: String
    let options: JournalOptions

    private(set) var name: SegmentName
    /// The active segment's descriptor; nil once closed. Closed exactly once: after a close the number may be
    /// reused by anything else in the process (SQLite, a socket), so a second close would hit that instead.
    private var openFile: FileDescriptor?
    /// Where the next frame goes.
    private(set) var offset: Int
    /// The file's size: past `offset` it holds zeros the writer wrote ahead (``JournalOptions/preallocationBytes``).
    private var allocatedEnd: Int
    /// Whether this segment gets zeros ahead of its frames: it says so in its header, and the options want it.
    private var preallocates: Bool
    private(set) var nextLSN: UInt64
    /// The highest LSN known to be on stable storage.
    private(set) var durableLSN: UInt64
    private var lastFrameCRC: UInt32
    private var createdNanoseconds: UInt64
    private var highestSegmentID: UInt64
    private var recordsInSegment: Int
    /// The last frame written is not yet vouched for by a later synced frame.
    private(set) var lastFrameUnvouched = false

    var lastLSN: UInt64 { nextLSN - 1 }
    var hasUnsyncedRecords: Bool { durableLSN < lastLSN }

    /// Continues the recovered tail segment.
    init(continuing scan: SegmentScan, options: JournalOptions, directory: String, highestSegmentID: UInt64) throws {
        self.io = options.io
        self.directory = directory
        self.options = options
        name = scan.name
        let file = try io.open(directory + "/" + scan.name.fileName, mode: .readWrite)
        openFile = file
        offset = scan.validEnd
        allocatedEnd = scan.validEnd + scan.preallocatedBytes
        preallocates = scan.header?.isPreallocated == true && options.preallocationBytes > 0
        nextLSN = scan.nextLSN
        lastFrameCRC = scan.lastFrameCRC
        createdNanoseconds = scan.header?.createdNanoseconds ?? options.now()
        self.highestSegmentID = highestSegmentID
        recordsInSegment = scan.recordCount
        durableLSN = scan.lastLSN
        // What an earlier process wrote may still sit in the page cache: make it durable before vouching for it.
        do { try io.sync(file) } catch {
            abandon()
            throw error
        }
    }

    /// Starts a new segment after `previous` (or the journal's first one when `previous` is nil).
    init(
        startingAt baseLSN: UInt64, after previous: SegmentScan?, options: JournalOptions, directory: String,
        highestSegmentID: UInt64
    ) throws {
        self.io = options.io
        self.directory = directory
        self.options = options
        self.highestSegmentID = highestSegmentID
        name = SegmentName(baseLSN: baseLSN, segmentID: highestSegmentID + 1)
        openFile = nil
        offset = 0
        allocatedEnd = 0
        preallocates = false
        nextLSN = baseLSN
        durableLSN = baseLSN - 1
        lastFrameCRC = 0
        createdNanoseconds = 0
        recordsInSegment = 0
        try createSegment(
            baseLSN: baseLSN,
            previousID: previous?.name.segmentID ?? 0,
            previousLastLSN: baseLSN - 1,
            previousFrameCRC: previous?.lastFrameCRC ?? 0
        )
    }

    /// Writes `records` as one or more batch frames in a single `pwrite`. Returns the first record's LSN.
    func append(_ records: ArraySlice<[UInt8]>) throws -> UInt64 {
        let first = nextLSN
        var bytes: [UInt8] = []
        var start = records.startIndex
        while start < records.endIndex {
            // Cut frames at maxBatchBytes of raw payload (and 65,535 records, the header's limit).
            var end = start
            var raw = 0
            while end < records.endIndex, end - start < Int(UInt16.max),
                end == start || raw + records[end].count + 10 <= options.maxBatchBytes
            {
                raw += records[end].count + 10
                end += 1
            }
            let frame = encoder.batch(records[start..<end], firstLSN: nextLSN, syncedThroughLSN: durableLSN,
                                      previousFrameCRC: lastFrameCRC)
            bytes.append(contentsOf: frame.bytes)
            lastFrameCRC = frame.crc
            nextLSN += UInt64(end - start)
            start = end
        }
        try write(bytes)
        recordsInSegment += records.count
        lastFrameUnvouched = true
        return first
    }

    /// Re-appends salvaged records under their original LSNs, with a gap frame for every missing range.
    func appendSalvaged(_ records: [(lsn: UInt64, bytes: [UInt8])]) throws {
        var index = 0
        while index < records.count {
            if records[index].lsn > nextLSN {
                var count = [UInt8]()
                count.appendInteger(records[index].lsn - nextLSN)
                try writeControl(.gap, payload: count)
                nextLSN = records[index].lsn
            }
            var end = index
            while end < records.count, records[end].lsn == nextLSN + UInt64(end - index) { end += 1 }
            _ = try append(ArraySlice(records[index..<end].map(\.bytes)))
            index = end
        }
    }

    /// Carries the journal past LSNs it no longer holds (up to a kept checkpoint) with one gap frame, and
    /// vouches for it with a synced note, so the next open finds an intact chain.
    func skip(through lsn: UInt64) throws {
        guard lsn >= nextLSN else { return }
        var count = [UInt8]()
        count.appendInteger(lsn - nextLSN + 1)
        try writeControl(.gap, payload: count)
        nextLSN = lsn + 1
        try writeNote(.idle)
    }

    /// Makes everything written durable. The corresponding C function is `fdatasync`.
    func sync() throws {
        try io.sync(try file)
        durableLSN = lastLSN
    }

    /// Writes a note frame that vouches for everything synced so far, and syncs it.
    func writeNote(_ reason: NoteReason) throws {
        if hasUnsyncedRecords { try sync() }
        try writeControl(.note, payload: [reason.rawValue])
        try io.sync(try file)
        lastFrameUnvouched = false
    }

    /// Whether the active segment is due for a roll, by size or by age (an empty segment never rolls by age).
    func isDueForRoll(now: UInt64) -> Bool {
        if offset >= options.segmentSize { return true }
        guard let maxAge = options.segmentMaxAge, recordsInSegment > 0 else { return false }
        return now >= createdNanoseconds && now - createdNanoseconds >= maxAge.nanoseconds
    }

    /// When the active segment becomes due for a roll by age, if it can.
    func rollDeadline() -> UInt64? {
        guard let maxAge = options.segmentMaxAge, recordsInSegment > 0 else { return nil }
        return createdNanoseconds + maxAge.nanoseconds
    }

    /// Seals the active segment (seal frame, sync) and starts the next one.
    func roll() throws {
        if hasUnsyncedRecords { try sync() }
        var payload = [UInt8]()
        payload.appendInteger(lastLSN)
        payload.appendInteger(UInt64(recordsInSegment))
        try writeControl(.seal, payload: payload)
        try io.sync(try file)
        lastFrameUnvouched = false
        // A sealed segment keeps no unused space, and the cut is synced: keiji before 2026-12-04 reads zeros after
        // the seal of a segment that is not the last as damage. (A crash between the two syncs leaves them; this
        // keiji reads them as unused space.)
        if allocatedEnd > offset {
            try io.truncate(try file, to: offset)
            try io.sync(try file)
        }
        abandon()
        try createSegment(baseLSN: nextLSN, previousID: name.segmentID, previousLastLSN: lastLSN,
                          previousFrameCRC: lastFrameCRC)
    }

    /// Syncs and closes, leaving a clean-close note as the last frame.
    func close() throws {
        defer { abandon() }
        try writeNote(.cleanClose)
    }

    /// Releases the descriptor without writing (after a failure). Does nothing if it is already closed, so
    /// every failure path may call it.
    func abandon() {
        guard let file = openFile else { return }
        openFile = nil
        io.close(file)
    }

    // MARK: - Private

    private var encoder: FrameEncoder {
        FrameEncoder(segmentIDLow: UInt32(truncatingIfNeeded: name.segmentID),
                     compressionThreshold: options.compressionThreshold)
    }

    /// The active segment's descriptor, or an error once it is closed (after a failed roll or a close).
    private var file: FileDescriptor {
        get throws {
            guard let openFile else { throw JournalError(.closed, "segment \(name.fileName) is closed") }
            return openFile
        }
    }

    private func writeControl(_ type: FrameType, payload: [UInt8]) throws {
        let frame = encoder.control(type, payload: payload, nextLSN: nextLSN, syncedThroughLSN: durableLSN,
                                    previousFrameCRC: lastFrameCRC)
        try write(frame.bytes)
        lastFrameCRC = frame.crc
    }

    /// Writes frames at `offset` in one `pwrite`. In a preallocating segment, frames that would pass the zeros
    /// written so far take the next chunk of zeros with them, so the file's size changes once a chunk.
    private func write(_ frames: [UInt8]) throws {
        let end = offset + frames.count
        if preallocates, end > allocatedEnd, end < options.segmentSize {
            // Never past the size at which the segment rolls: the frames that go beyond it grow the file.
            let chunk = options.preallocationBytes
            let newEnd = min((end + chunk - 1) / chunk * chunk, options.segmentSize)
            try io.write(try file, Self.zeroPadded(frames, to: newEnd - offset), at: offset)
            allocatedEnd = newEnd
        } else {
            try io.write(try file, frames, at: offset)
        }
        offset = end
    }

    /// `bytes` followed by zeros up to `size` bytes: a chunk of preallocation. Not `repeatElement`: unoptimised, Swift
    /// appends that a byte at a time through generic code (0.4 s of CPU for 1 MiB); `Array(repeating:count:)` is a
    /// fill however the module is compiled.
    private static func zeroPadded(_ bytes: [UInt8], to size: Int) -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: size - bytes.count)
    }

    /// Header written and synced under a `.tmp` name, renamed into place, directory synced: a segment file
    /// either does not exist or has a durable, valid header.
    private func createSegment(baseLSN: UInt64, previousID: UInt64, previousLastLSN: UInt64, previousFrameCRC: UInt32) throws {
        highestSegmentID += 1
        let next = SegmentName(baseLSN: baseLSN, segmentID: highestSegmentID)
        let created = options.now()
        let header = SegmentHeader(
            segmentID: next.segmentID, baseLSN: baseLSN, createdNanoseconds: created,
            previousSegmentID: previousID, previousLastLSN: previousLastLSN,
            previousFrameCRC: previousFrameCRC, maxFramePayload: UInt32(options.maxFramePayload),
            flags: options.preallocationBytes > 0 ? SegmentHeader.preallocatedFlag : 0
        )
        let path = directory + "/" + next.fileName
        try io.remove(path + ".tmp")
        let temporary = try io.open(path + ".tmp", mode: .createNew)
        // The first chunk of zeros goes with the header, into the sync a new segment pays anyway.
        let allocated = max(SegmentHeader.size, header.isPreallocated ? min(options.preallocationBytes, options.segmentSize) : 0)
        do {
            try io.write(temporary, Self.zeroPadded(header.encoded(), to: allocated), at: 0)
            try io.sync(temporary)
        } catch {
            io.close(temporary)
            throw error
        }
        io.close(temporary)
        try io.rename(path + ".tmp", to: path)
        try io.syncDirectory(directory)
        openFile = try io.open(path, mode: .readWrite)
        name = next
        offset = SegmentHeader.size
        allocatedEnd = allocated
        preallocates = header.isPreallocated
        lastFrameCRC = previousFrameCRC
        createdNanoseconds = created
        recordsInSegment = 0
    }
}
