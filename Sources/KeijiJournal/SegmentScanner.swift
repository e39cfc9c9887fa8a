/// Reads one segment file's bytes and says what is in it: the valid frames up to the first damage, and, if
/// there is damage, what later frames claim (the evidence recovery needs to tell a torn tail from corruption).
///
/// Pure: it never writes. Recovery, the reader and `verify` all use it, so damage is judged one way.
struct SegmentScanner {
    /// No frame may declare a larger payload, whatever its segment header says: bounds every allocation.
    static let payloadHardLimit = 256 << 20

    /// The payload bound for frames of a segment: what its writer declared, within the hard limit.
    /// LSNs stay far below this, so no sum of an LSN and a count can overflow.
    static let maxLSN: UInt64 = 1 << 62
    static let maxGap: UInt64 = 1 << 40

    static func payloadLimit(_ header: SegmentHeader?) -> Int {
        min(Int(header?.maxFramePayload ?? UInt32(payloadHardLimit)), payloadHardLimit)
    }

    /// Scans `bytes` (a whole segment file). `onRecord` sees every record of every valid batch frame in order.
    func scan(
        _ bytes: [UInt8],
        name: SegmentName,
        onRecord: (_ lsn: UInt64, _ record: UnsafeRawBufferPointer) -> Void = { _, _ in }
    ) -> SegmentScan {
        var scan = SegmentScan(name: name, fileSize: bytes.count)
        let header: SegmentHeader
        switch SegmentHeader.decode(bytes) {
        case .failure(let problem):
            scan.headerProblem = problem.description
            return scan
        case .success(let decoded):
            guard decoded.segmentID == name.segmentID, decoded.baseLSN == name.baseLSN else {
                scan.headerProblem = "segment header says base LSN \(decoded.baseLSN), id \(decoded.segmentID), "
                    + "but the file is named \(name.fileName)"
                return scan
            }
            header = decoded
        }
        scan.header = header
        scan.nextLSN = header.baseLSN
        scan.lastFrameCRC = header.previousFrameCRC
        scan.validEnd = SegmentHeader.size

        let maxFramePayload = Self.payloadLimit(header)
        bytes.withUnsafeBytes { buffer in
            var offset = SegmentHeader.size
            let idLow = UInt32(truncatingIfNeeded: name.segmentID)
            while offset < buffer.count {
                let problem: FrameProblem
                switch FrameHeader.parse(buffer, at: offset, segmentIDLow: idLow, maxPayload: maxFramePayload) {
                case .failure(let p):
                    if header.isPreallocated, Self.isZero(buffer, from: offset) {
                        scan.preallocatedBytes = buffer.count - offset  // space the writer has not used yet
                        return
                    }
                    problem = p
                case .success(let frame):
                    if let p = accept(frame, at: offset, in: buffer, scan: &scan, onRecord: onRecord) {
                        problem = p
                    } else {
                        offset += frame.frameSize
                        scan.validEnd = offset
                        continue
                    }
                }
                scan.damage = Damage(offset: offset, problem: problem, expectedLSN: scan.nextLSN)
                collectEvidence(after: offset, in: buffer, idLow: idLow, maxFramePayload: maxFramePayload, into: &scan.damage!)
                return
            }
        }
        return scan
    }

    /// Whether every byte from `offset` to the end is zero: a preallocated segment's unused space.
    static func isZero(_ buffer: UnsafeRawBufferPointer, from offset: Int) -> Bool {
        var index = offset
        while index + 8 <= buffer.count {
            if buffer.loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
            index += 8
        }
        while index < buffer.count {
            if buffer[index] != 0 { return false }
            index += 1
        }
        return true
    }

    /// Checks a checksum-valid frame against its place in the segment; on success updates `scan`.
    private func accept(
        _ frame: FrameHeader,
        at offset: Int,
        in buffer: UnsafeRawBufferPointer,
        scan: inout SegmentScan,
        onRecord: (UInt64, UnsafeRawBufferPointer) -> Void
    ) -> FrameProblem? {
        if scan.sealed { return .dataAfterSeal }
        guard frame.firstLSN < Self.maxLSN else { return .undecodablePayload("LSN out of range") }
        guard frame.firstLSN == scan.nextLSN else {
            return .lsnDiscontinuity(expected: scan.nextLSN, found: frame.firstLSN)
        }
        guard frame.previousFrameCRC == scan.lastFrameCRC else { return .brokenChain }
        let payloadStart = offset + FrameHeader.size
        let payloadEnd = payloadStart + Int(frame.payloadLength)
        let stored = UnsafeRawBufferPointer(rebasing: buffer[payloadStart..<payloadEnd])
        // Padding is outside the CRC; it must be zero so that no flipped bit goes unnoticed.
        for index in payloadEnd..<min(offset + frame.frameSize, buffer.count) where buffer[index] != 0 {
            _ = index
            return .undecodablePayload("non-zero padding after the payload")
        }
        var advance: UInt64 = 0
        switch frame.type {
        case .batch:
            if let problem = batchProblem(frame, stored: stored, onRecord: onRecord) { return problem }
            advance = UInt64(frame.recordCount)
            scan.recordCount += Int(frame.recordCount)
            scan.rawPayloadBytes += Int(frame.rawLength)
            scan.storedPayloadBytes += Int(frame.payloadLength)
        case .seal:
            guard frame.payloadLength == 16, stored.loadUnaligned(as: UInt64.self).littleEndian == scan.nextLSN &- 1
            else { return .undecodablePayload("seal frame disagrees with the segment's last LSN") }
            scan.sealed = true
        case .note:
            guard frame.payloadLength == 1, let reason = NoteReason(rawValue: stored[0]) else {
                return .undecodablePayload("unknown note")
            }
            scan.endsWithCleanClose = reason == .cleanClose
        case .gap:
            advance = frame.lsnCount(payload: stored)
            guard frame.payloadLength == 8, advance > 0, advance <= Self.maxGap else {
                return .undecodablePayload("gap frame with an impossible count")
            }
        }
        if frame.type != .note { scan.endsWithCleanClose = false }
        scan.frameCount += 1
        scan.nextLSN += advance
        scan.lastFrameCRC = frame.storedCRC
        scan.maxSyncedThroughLSN = max(scan.maxSyncedThroughLSN, frame.syncedThroughLSN)
        return nil
    }

    /// Decodes a batch frame's payload and hands out its records, all or none.
    func decodeBatch(
        _ frame: FrameHeader, stored: UnsafeRawBufferPointer, onRecord: (UInt64, UnsafeRawBufferPointer) -> Void
    ) -> Bool {
        batchProblem(frame, stored: stored, onRecord: onRecord) == nil
    }

    private func batchProblem(
        _ frame: FrameHeader, stored: UnsafeRawBufferPointer, onRecord: (UInt64, UnsafeRawBufferPointer) -> Void
    ) -> FrameProblem? {
        guard frame.recordCount > 0 else { return .undecodablePayload("batch frame without records") }
        // Here too, not only in `accept`: the intact-frame finder decodes frames found anywhere after damage,
        // and `firstLSN + index` must not overflow for a checksum-valid frame claiming LSNs near 2^64.
        guard frame.firstLSN < Self.maxLSN else { return .undecodablePayload("LSN out of range") }
        return withDecodedPayload(frame, stored) { raw in
            guard let raw else { return .undecodablePayload("LZ4 block is malformed or has the wrong length") }
            return splitRecords(raw, count: Int(frame.recordCount), firstLSN: frame.firstLSN, onRecord: onRecord)
        }
    }

    private func withDecodedPayload(
        _ frame: FrameHeader,
        _ stored: UnsafeRawBufferPointer,
        _ body: (UnsafeRawBufferPointer?) -> FrameProblem?
    ) -> FrameProblem? {
        switch frame.codec {
        case .raw:
            return body(stored)
        case .lz4Block:
            guard let raw = LZ4Block.decompress(stored, rawLength: Int(frame.rawLength)) else { return body(nil) }
            return raw.withUnsafeBytes { body($0) }
        }
    }

    private func splitRecords(
        _ raw: UnsafeRawBufferPointer,
        count: Int,
        firstLSN: UInt64,
        onRecord: (UInt64, UnsafeRawBufferPointer) -> Void
    ) -> FrameProblem? {
        // Validate the whole frame before handing out any record, so a caller never sees half a frame.
        var offset = 0
        for _ in 0..<count {
            guard let length = raw.readVarint(at: &offset), length <= UInt64(raw.count - offset) else {
                return .undecodablePayload("record lengths overrun the payload")
            }
            offset += Int(length)
        }
        guard offset == raw.count else { return .undecodablePayload("payload has bytes after its last record") }
        offset = 0
        for index in 0..<count {
            let length = Int(raw.readVarint(at: &offset)!)
            onRecord(firstLSN + UInt64(index), UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)]))
            offset += length
        }
        return nil
    }

    /// Looks past damage for intact frames of this segment. A later frame whose `syncedThroughLSN` reaches the
    /// damaged LSN proves the damaged bytes had been synced, and so acknowledged.
    private func collectEvidence(
        after offset: Int, in buffer: UnsafeRawBufferPointer, idLow: UInt32, maxFramePayload: Int, into damage: inout Damage
    ) {
        var probe = alignedTo8(offset + 8)
        while probe + FrameHeader.size <= buffer.count {
            if case .success(let frame) = FrameHeader.parse(buffer, at: probe, segmentIDLow: idLow, maxPayload: maxFramePayload) {
                damage.laterSyncedThroughLSN = max(damage.laterSyncedThroughLSN, frame.syncedThroughLSN)
                probe += frame.frameSize
            } else {
                probe += 8
            }
        }
        // The damaged frame's own header may still say which LSNs it carried, checksum or not.
        if offset + FrameHeader.size <= buffer.count, buffer[offset + 4] == FrameType.batch.rawValue {
            let first = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
            let count = UInt64(UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self)))
            if first == damage.expectedLSN, first < Self.maxLSN, count > 0 { damage.claimedRange = first...(first + count - 1) }
        }
    }
}

/// What a scan found in one segment.
struct SegmentScan: Sendable {
    var name: SegmentName
    var fileSize: Int
    var header: SegmentHeader?
    /// Set when the header page is unusable; then nothing else was read.
    var headerProblem: String?
    /// The LSN the next frame must start at: after a clean scan, one past the segment's last LSN.
    var nextLSN: UInt64 = 0
    var lastFrameCRC: UInt32 = 0
    /// Offset just past the last valid frame (padding included).
    var validEnd: Int = 0
    /// Zeros after `validEnd` to the end of a preallocated segment (``SegmentHeader/isPreallocated``).
    var preallocatedBytes = 0
    var frameCount = 0
    var recordCount = 0
    var rawPayloadBytes = 0
    var storedPayloadBytes = 0
    var sealed = false
    var endsWithCleanClose = false
    var maxSyncedThroughLSN: UInt64 = 0
    var damage: Damage?

    var lastLSN: UInt64 { nextLSN &- 1 }
    var isIntact: Bool { headerProblem == nil && damage == nil }

    /// Whether this segment continues `previous`: its header names it and its last frame, it starts at the
    /// next LSN, and `previous` was sealed (rolling seals before it creates the next segment). A segment
    /// with an unreadable header does not follow anything.
    func follows(_ previous: SegmentScan) -> Bool {
        guard let header else { return false }
        return header.baseLSN == previous.nextLSN && header.previousSegmentID == previous.name.segmentID
            && header.previousFrameCRC == previous.lastFrameCRC && previous.sealed
    }
}

/// The first damaged spot in a segment, with the evidence found after it.
struct Damage: Sendable {
    var offset: Int
    var problem: FrameProblem
    /// The LSN the damaged frame should have started at.
    var expectedLSN: UInt64
    /// The highest synced-through LSN of the intact frames of this segment found after the damage.
    var laterSyncedThroughLSN: UInt64 = 0
    /// The LSNs the damaged frame's header claims, when its header is still readable.
    var claimedRange: ClosedRange<UInt64>?

    /// Whether a later frame proves the damaged LSN had been synced (and so acknowledged in `sync` mode).
    var isVouchedFor: Bool { laterSyncedThroughLSN >= expectedLSN }
}
