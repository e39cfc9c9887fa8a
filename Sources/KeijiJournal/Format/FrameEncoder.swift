/// Builds frames: the batch payload (`[varint length][bytes]` per record), optional LZ4, header and CRC.
struct FrameEncoder: Sendable {
    var segmentIDLow: UInt32
    /// Batches whose raw payload is smaller than this are stored raw: LZ4 cannot win on a few hundred bytes.
    var compressionThreshold: Int

    struct Encoded {
        var bytes: [UInt8]
        var crc: UInt32
    }

    /// Encodes one batch frame holding `records`, which take LSNs `firstLSN...`.
    func batch(
        _ records: ArraySlice<[UInt8]>,
        firstLSN: UInt64,
        syncedThroughLSN: UInt64,
        previousFrameCRC: UInt32
    ) -> Encoded {
        var raw: [UInt8] = []
        raw.reserveCapacity(records.reduce(0) { $0 + $1.count + 3 })
        for record in records {
            raw.appendVarint(UInt64(record.count))
            raw.append(contentsOf: record)
        }
        var codec = FrameCodec.raw
        var payload = raw
        if raw.count >= compressionThreshold, let compressed = raw.withUnsafeBytes({ LZ4Block.compress($0) }) {
            codec = .lz4Block
            payload = compressed
        }
        let header = FrameHeader(
            type: .batch, codec: codec, recordCount: UInt16(records.count),
            payloadLength: UInt32(payload.count), rawLength: UInt32(raw.count),
            firstLSN: firstLSN, syncedThroughLSN: syncedThroughLSN,
            segmentIDLow: segmentIDLow, previousFrameCRC: previousFrameCRC
        )
        return frame(header, payload: payload)
    }

    /// Encodes a record-less frame (seal, note, gap) with a raw payload.
    func control(
        _ type: FrameType,
        payload: [UInt8],
        nextLSN: UInt64,
        syncedThroughLSN: UInt64,
        previousFrameCRC: UInt32
    ) -> Encoded {
        let header = FrameHeader(
            type: type, codec: .raw, recordCount: 0,
            payloadLength: UInt32(payload.count), rawLength: UInt32(payload.count),
            firstLSN: nextLSN, syncedThroughLSN: syncedThroughLSN,
            segmentIDLow: segmentIDLow, previousFrameCRC: previousFrameCRC
        )
        return frame(header, payload: payload)
    }

    private func frame(_ header: FrameHeader, payload: [UInt8]) -> Encoded {
        var bytes = [UInt8](repeating: 0, count: FrameHeader.size)
        bytes.reserveCapacity(header.frameSize)
        header.write(into: &bytes, at: 0)
        bytes.append(contentsOf: payload)
        let crc = bytes.withUnsafeBytes { CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[4...]))) }
        bytes.setInteger(crc, at: 0)
        bytes.append(contentsOf: repeatElement(0, count: header.frameSize - bytes.count))
        return Encoded(bytes: bytes, crc: crc)
    }
}

/// Why a note frame was written.
enum NoteReason: UInt8, Sendable {
    case cleanClose = 1
    case idle = 2
}
