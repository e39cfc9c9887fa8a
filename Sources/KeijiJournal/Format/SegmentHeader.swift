/// The 4096-byte page at the start of every segment file.
///
/// It is written, synced and renamed into place before any frame, so it is never torn together with
/// frames. Layout (little-endian), see docs/journal-format.md:
///
/// ```
/// 0   8  magic "KEIJIJNL"          8  2  format version (1)     10 2 flags (bit 0: preallocated)
/// 12  4  header length (4096)     16  8  segment id            24 8 base LSN
/// 32  8  created (Unix ns)        40  8  previous segment id   48 8 previous segment's last LSN
/// 56  4  previous segment's last frame CRC (the chain across files)
/// 60  4  max frame payload        64  4  masked CRC32C of bytes 0..<64 and 68..<4096
/// 68…4095 zero (covered by the CRC, so any flipped bit in the page is detected)
/// ```
struct SegmentHeader: Equatable, Sendable {
    static let size = 4096
    static let magic: [UInt8] = Array("KEIJIJNL".utf8)
    static let version: UInt16 = 1

    var segmentID: UInt64
    var baseLSN: UInt64
    var createdNanoseconds: UInt64
    var previousSegmentID: UInt64
    var previousLastLSN: UInt64
    /// The CRC field of the last frame of the previous segment: the first frame's `previousFrameCRC`.
    var previousFrameCRC: UInt32
    var maxFramePayload: UInt32
    /// ``preallocatedFlag`` or 0. Readers before 2026-12-04 ignore the field: they read the zeros of a
    /// preallocated last segment as a torn tail and cut them, losing nothing (a seal removes a segment's zeros).
    var flags: UInt16 = 0

    /// The writer fills this segment with zeros ahead of its frames (``JournalOptions/preallocationBytes``):
    /// zeros from a frame boundary to the end of the file are space not written yet, not damage.
    static let preallocatedFlag: UInt16 = 1

    var isPreallocated: Bool { flags & Self.preallocatedFlag != 0 }

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.replaceSubrange(0..<8, with: Self.magic)
        bytes.setInteger(Self.version, at: 8)
        bytes.setInteger(flags, at: 10)
        bytes.setInteger(UInt32(Self.size), at: 12)
        bytes.setInteger(segmentID, at: 16)
        bytes.setInteger(baseLSN, at: 24)
        bytes.setInteger(createdNanoseconds, at: 32)
        bytes.setInteger(previousSegmentID, at: 40)
        bytes.setInteger(previousLastLSN, at: 48)
        bytes.setInteger(previousFrameCRC, at: 56)
        bytes.setInteger(maxFramePayload, at: 60)
        bytes.setInteger(CRC32C.mask(Self.checksum(bytes)), at: 64)
        return bytes
    }

    /// Decodes a header, or says why it cannot.
    static func decode(_ bytes: [UInt8]) -> Result<SegmentHeader, HeaderProblem> {
        guard bytes.count >= size else { return .failure(.short(bytes.count)) }
        guard Array(bytes[0..<8]) == magic else { return .failure(.badMagic) }
        guard CRC32C.mask(Self.checksum(bytes)) == bytes.getInteger(at: 64, as: UInt32.self) else {
            return .failure(.checksumMismatch)
        }
        let version: UInt16 = bytes.getInteger(at: 8)
        guard version == Self.version else { return .failure(.unsupportedVersion(version)) }
        guard bytes.getInteger(at: 12, as: UInt32.self) == UInt32(size) else { return .failure(.badMagic) }
        return .success(
            SegmentHeader(
                segmentID: bytes.getInteger(at: 16),
                baseLSN: bytes.getInteger(at: 24),
                createdNanoseconds: bytes.getInteger(at: 32),
                previousSegmentID: bytes.getInteger(at: 40),
                previousLastLSN: bytes.getInteger(at: 48),
                previousFrameCRC: bytes.getInteger(at: 56),
                maxFramePayload: bytes.getInteger(at: 60),
                flags: bytes.getInteger(at: 10)
            )
        )
    }

    /// CRC32C of the page without its own CRC field.
    private static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { raw in
            let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<64]))
            return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[68..<size]), extending: head)
        }
    }

    enum HeaderProblem: Error, Equatable, CustomStringConvertible {
        case short(Int), badMagic, checksumMismatch, unsupportedVersion(UInt16)
        var description: String {
            switch self {
            case .short(let n): "segment header is \(n) bytes, expected \(SegmentHeader.size)"
            case .badMagic: "segment header has the wrong magic"
            case .checksumMismatch: "segment header checksum mismatch"
            case .unsupportedVersion(let v): "segment format version \(v) is not supported by this keiji (reads 1)"
            }
        }
    }
}
