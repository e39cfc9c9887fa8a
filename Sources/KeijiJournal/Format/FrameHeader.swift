/// What a frame holds. Zero is never written: zero bytes where a frame should start mean "end of data".
enum FrameType: UInt8, Sendable {
    /// One group-commit batch of records.
    case batch = 1
    /// The last frame of a sealed segment: nothing follows it.
    case seal = 2
    /// A record-less frame whose `syncedThroughLSN` vouches for everything before it (clean close, idle).
    case note = 3
    /// Declares LSNs `firstLSN ..< firstLSN + count` lost; written only by an operator's `salvage` recovery.
    case gap = 4
}

/// How a frame's payload is stored.
enum FrameCodec: UInt8, Sendable {
    case raw = 0
    /// One independent LZ4 block (no history across frames).
    case lz4Block = 1
}

/// The 40-byte header in front of every frame's payload. Layout (little-endian):
///
/// ```
/// 0  4  masked CRC32C of header bytes 4..<40 followed by the payload
/// 4  1  type     5 1 codec     6 2 record count
/// 8  4  payload length (stored)          12 4 raw length (after decompression)
/// 16 8  first LSN                        24 8 synced-through LSN
/// 32 4  segment id (low 32 bits)         36 4 previous frame's stored CRC
/// ```
struct FrameHeader: Equatable, Sendable {
    static let size = 40

    var storedCRC: UInt32 = 0
    var type: FrameType
    var codec: FrameCodec
    var recordCount: UInt16
    var payloadLength: UInt32
    var rawLength: UInt32
    var firstLSN: UInt64
    var syncedThroughLSN: UInt64
    var segmentIDLow: UInt32
    var previousFrameCRC: UInt32

    /// The frame's total size on disk, padding included.
    var frameSize: Int { alignedTo8(Self.size + Int(payloadLength)) }

    /// How many LSNs the frame accounts for: its records, or for a gap frame the lost range.
    func lsnCount(payload: UnsafeRawBufferPointer) -> UInt64 {
        switch type {
        case .batch: return UInt64(recordCount)
        case .gap: return payload.count >= 8 ? payload.loadUnaligned(as: UInt64.self).littleEndian : 0
        case .seal, .note: return 0
        }
    }

    func write(into bytes: inout [UInt8], at offset: Int) {
        bytes[offset + 4] = type.rawValue
        bytes[offset + 5] = codec.rawValue
        bytes.setInteger(recordCount, at: offset + 6)
        bytes.setInteger(payloadLength, at: offset + 8)
        bytes.setInteger(rawLength, at: offset + 12)
        bytes.setInteger(firstLSN, at: offset + 16)
        bytes.setInteger(syncedThroughLSN, at: offset + 24)
        bytes.setInteger(segmentIDLow, at: offset + 32)
        bytes.setInteger(previousFrameCRC, at: offset + 36)
    }

    /// Parses and checks a frame at `offset` of `bytes`: bounds before anything is allocated, the segment it
    /// belongs to, then the checksum. Record-level checks (LSN continuity, the CRC chain, decompression) are
    /// the scanner's.
    static func parse(
        _ bytes: UnsafeRawBufferPointer,
        at offset: Int,
        segmentIDLow: UInt32,
        maxPayload: Int
    ) -> Result<FrameHeader, FrameProblem> {
        guard offset >= 0, bytes.count - offset >= size else { return .failure(.truncatedHeader) }
        func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + at, as: T.self))
        }
        guard let type = FrameType(rawValue: bytes[offset + 4]) else {
            let allZero = load(0, UInt64.self) == 0 && load(8, UInt64.self) == 0
            return .failure(allZero ? .unwritten : .malformedHeader)
        }
        guard let codec = FrameCodec(rawValue: bytes[offset + 5]) else { return .failure(.malformedHeader) }
        let payloadLength = load(8, UInt32.self)
        let rawLength = load(12, UInt32.self)
        guard Int(payloadLength) <= maxPayload else { return .failure(.malformedHeader) }
        guard Int(payloadLength) <= bytes.count - offset - size else { return .failure(.truncatedPayload) }
        switch codec {
        case .raw:
            guard rawLength == payloadLength else { return .failure(.malformedHeader) }
        case .lz4Block:
            guard Int(rawLength) <= maxPayload, UInt64(rawLength) <= 255 * UInt64(payloadLength) else {
                return .failure(.malformedHeader)
            }
        }
        guard load(32, UInt32.self) == segmentIDLow else { return .failure(.foreignSegment) }
        let header = FrameHeader(
            storedCRC: load(0, UInt32.self),
            type: type,
            codec: codec,
            recordCount: load(6, UInt16.self),
            payloadLength: payloadLength,
            rawLength: rawLength,
            firstLSN: load(16, UInt64.self),
            syncedThroughLSN: load(24, UInt64.self),
            segmentIDLow: segmentIDLow,
            previousFrameCRC: load(36, UInt32.self)
        )
        let covered = UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + size + Int(payloadLength))])
        guard CRC32C.mask(CRC32C.checksum(covered)) == header.storedCRC else { return .failure(.checksumMismatch) }
        return .success(header)
    }
}

/// Why the bytes at an offset are not the frame that should be there.
enum FrameProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case truncatedHeader, unwritten, malformedHeader, truncatedPayload, foreignSegment, checksumMismatch
    case lsnDiscontinuity(expected: UInt64, found: UInt64)
    case brokenChain
    case undecodablePayload(String)
    case dataAfterSeal

    var description: String {
        switch self {
        case .truncatedHeader: "file ends inside a frame header"
        case .unwritten: "zero bytes where a frame should start"
        case .malformedHeader: "malformed frame header (type, codec or lengths out of range)"
        case .truncatedPayload: "file ends inside a frame payload"
        case .foreignSegment: "frame belongs to another segment (stale or misdirected write)"
        case .checksumMismatch: "frame checksum mismatch"
        case .lsnDiscontinuity(let expected, let found): "frame starts at LSN \(found), expected \(expected)"
        case .brokenChain: "frame does not chain to the previous frame's checksum (missing, duplicated or reordered frame)"
        case .undecodablePayload(let why): "frame payload does not decode: \(why)"
        case .dataAfterSeal: "data after the segment's seal frame"
        }
    }
}
