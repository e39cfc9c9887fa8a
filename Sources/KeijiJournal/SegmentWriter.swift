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
        let path = directory + "/" + scan.name.fileName
        let file: FileDescriptor
        do { file = try io.open(path, mode: .readWrite) } catch { throw JournalError.failure("cannot open the journal", file: path, error) }
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
        do { try sync() } catch {
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
    /// If it throws, none of the records is in the file (unless ``takeBack(to:after:)``'s cut failed, which the error says).
    func append(_ records: ArraySlice<[UInt8]>) throws -> UInt64 {
        let first = nextLSN
        var lastCRC = lastFrameCRC
        var lsn = nextLSN
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
            let frame = encoder.batch(records[start..<end], firstLSN: lsn, syncedThroughLSN: durableLSN,
                                      previousFrameCRC: lastCRC)
            bytes.append(contentsOf: frame.bytes)
            lastCRC = frame.crc
            lsn += UInt64(end - start)
            start = end
        }
        try write(bytes)
        lastFrameCRC = lastCRC
        nextLSN = lsn
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
        let file = try self.file
        try worded("cannot sync the journal", { try io.sync(file) })
        durableLSN = lastLSN
    }

    /// Cuts the file back to `start` and syncs the cut, after `failure`, a write or sync of frames from `start` on:
    /// an append reported failed must not be replayed by the next open, and a partial write can hold whole
    /// frames (a batch of several) or a failed sync frames the kernel writes back later. Returns the error to
    /// throw: `failure`, saying too when the cut itself failed (then some of those frames may still be found).
    /// After a failed sync the LSN and the frame chain stay where the append left them, past the file: nothing is
    /// appended after, as the journal stops at any failed append.
    func takeBack(to start: Int, after failure: any Error) -> JournalError {
        let answer = failure as? JournalError ?? JournalError(.io, "\(failure)")
        do {
            guard let openFile else { throw JournalError(.closed, "no segment open") }
            try io.truncate(openFile, to: start)
            try io.sync(openFile)
        } catch {
            return JournalError(answer.code, answer.message + "; some of what was written may still be in the journal", errno: answer.errno)
        }
        offset = start
        allocatedEnd = start
        return answer
    }

    /// Writes a note frame that vouches for everything synced so far, and syncs it.
    func writeNote(_ reason: NoteReason) throws {
        if hasUnsyncedRecords { try sync() }
        try writeControl(.note, payload: [reason.rawValue])
        try sync()
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
        try sync()
        lastFrameUnvouched = false
        // A sealed segment keeps no unused space, and the cut is synced: keiji before 2026-12-04 reads zeros after
        // the seal of a segment that is not the last as damage. (A crash between the two syncs leaves them; this
        // keiji reads them as unused space.)
        if allocatedEnd > offset {
            let file = try self.file
            try worded("cannot seal the journal segment", { try io.truncate(file, to: offset) })
            try sync()
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

    /// Writes frames at `offset` in one `pwrite`, and takes them back if that fails (``takeBack(to:after:)``). In a
    /// preallocating segment, frames that pass the zeros written so far are followed by the next chunk of zeros,
    /// before the sync that follows, so the file's size changes once a chunk (``preallocate(_:from:to:)``).
    private func write(_ frames: [UInt8]) throws {
        let file = try self.file
        let end = offset + frames.count
        do {
            try io.write(file, frames, at: offset)
        } catch {
            throw takeBack(to: offset, after: reworded(error, "cannot append to the journal"))
        }
        offset = end
        if preallocates, end > allocatedEnd, end < options.segmentSize {
            // Never past the size at which the segment rolls: the frames that go beyond it grow the file.
            let chunk = options.preallocationBytes
            (allocatedEnd, preallocates) = preallocate(file, from: end, to: min((end + chunk - 1) / chunk * chunk, options.segmentSize))
        }
    }

    /// Writes zeros over `[start, end)` of a preallocating segment. They belong to no frame, they only spare the
    /// syncs after them a new file size: when they do not fit (a full disk, a quota, a file size limit), what was
    /// written of them is given back and the segment grows frame by frame from there, as one without the flag does,
    /// rather than fail an append whose frames are written. Returns where the file's zeros end and whether to go on
    /// preallocating.
    private func preallocate(_ file: FileDescriptor, from start: Int, to end: Int) -> (allocatedEnd: Int, preallocates: Bool) {
        do {
            try io.write(file, [UInt8](repeating: 0, count: end - start), at: start)
            return (end, true)
        } catch {
            // A cut that fails leaves zeros up to `end` at most, which a seal cuts.
            return ((try? io.truncate(file, to: start)) != nil ? start : end, false)
        }
    }

    /// Runs `body` (I/O on the active segment), naming the segment and `action` in its error rather than a syscall
    /// on a descriptor number.
    private func worded<T>(_ action: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw reworded(error, action) }
    }

    private func reworded(_ error: any Error, _ action: String, file: String? = nil) -> JournalError {
        JournalError.failure(action, file: directory + "/" + (file ?? name.fileName), error)
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
        let temporary = path + ".tmp"
        func failure(_ error: any Error) -> JournalError {
            reworded(error, "cannot create the journal segment", file: next.fileName + ".tmp")
        }
        let file: FileDescriptor
        do {
            try io.remove(temporary)
            file = try io.open(temporary, mode: .createNew)
        } catch {
            throw failure(error)
        }
        // The first chunk of zeros goes with the header, into the sync a new segment pays anyway; a new segment
        // needs room for its header only.
        var allocated = SegmentHeader.size
        var zeros = header.isPreallocated
        do {
            try io.write(file, header.encoded(), at: 0)
            if zeros, options.preallocationBytes > SegmentHeader.size, options.segmentSize > SegmentHeader.size {
                (allocated, zeros) = preallocate(file, from: SegmentHeader.size, to: min(options.preallocationBytes, options.segmentSize))
            }
            try io.sync(file)
        } catch {
            io.close(file)
            // Not left to fill the disk until the next open removes it (and reports it as a repair).
            try? io.remove(temporary)
            throw failure(error)
        }
        io.close(file)
        do {
            try io.rename(temporary, to: path)
        } catch {
            try? io.remove(temporary)
            throw failure(error)
        }
        do {
            try io.syncDirectory(directory)
            openFile = try io.open(path, mode: .readWrite)
        } catch {
            throw reworded(error, "cannot create the journal segment", file: next.fileName)
        }
        name = next
        offset = SegmentHeader.size
        allocatedEnd = allocated
        preallocates = zeros
        lastFrameCRC = previousFrameCRC
        createdNanoseconds = created
        recordsInSegment = 0
    }
}
