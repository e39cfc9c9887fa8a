/// Finds every intact batch frame in a damaged segment by probing each 8-byte boundary: the frames recovery
/// can still vouch for after the first damage (used to report lost LSN ranges and by `salvage`).
struct IntactFrameFinder {

    /// Calls `body` with each record of each checksum-valid, decodable batch frame at or after `offset`.
    func forEachIntactBatch(
        in bytes: [UInt8], name: SegmentName, from offset: Int,
        _ body: (_ lsn: UInt64, _ record: [UInt8]) -> Void
    ) {
        let idLow = UInt32(truncatingIfNeeded: name.segmentID)
        let scanner = SegmentScanner()
        let maxFramePayload = SegmentScanner.payloadLimit(try? SegmentHeader.decode(bytes).get())
        bytes.withUnsafeBytes { buffer in
            var probe = alignedTo8(max(offset, SegmentHeader.size))
            while probe + FrameHeader.size <= buffer.count {
                guard case .success(let frame) = FrameHeader.parse(buffer, at: probe, segmentIDLow: idLow, maxPayload: maxFramePayload),
                    frame.type == .batch
                else {
                    probe += 8
                    continue
                }
                let payloadStart = probe + FrameHeader.size
                let stored = UnsafeRawBufferPointer(rebasing: buffer[payloadStart..<(payloadStart + Int(frame.payloadLength))])
                var records: [(UInt64, [UInt8])] = []
                let ok = scanner.decodeBatch(frame, stored: stored) { lsn, record in records.append((lsn, Array(record))) }
                if ok { records.forEach(body) }
                probe += ok ? frame.frameSize : 8
            }
        }
    }
}
