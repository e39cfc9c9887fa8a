/// An opaque snapshot of the owner's state as of LSN ``lsn``. Replaying records after `lsn` on top of it
/// gives the current state, so once a newer checkpoint exists, compaction may delete segments wholly at or below `lsn`.
public struct Checkpoint: Sendable, Equatable {
    public var lsn: UInt64
    public var createdNanoseconds: UInt64
    public var snapshot: [UInt8]

    public init(lsn: UInt64, createdNanoseconds: UInt64, snapshot: [UInt8]) {
        self.lsn = lsn
        self.createdNanoseconds = createdNanoseconds
        self.snapshot = snapshot
    }
}

/// Checkpoint files: `ckpt-<lsn, 20 digits>.ckpt`, written atomically (tmp, sync, rename, directory sync).
///
/// ```
/// 0  8 magic "KEIJICKP"   8 2 version (1)   10 6 zero
/// 16 8 lsn                24 8 created (Unix ns)   32 8 snapshot length
/// 40 4 masked CRC32C of bytes 0..<40 followed by the snapshot    44 4 zero    48… snapshot
/// ```
enum CheckpointFile {
    static let magic: [UInt8] = Array("KEIJICKP".utf8)
    static let headerSize = 48

    static func fileName(lsn: UInt64) -> String { "ckpt-" + SegmentName.padded(String(lsn), 20) + ".ckpt" }

    static func lsn(fromFileName name: String) -> UInt64? {
        guard name.count == 30, name.hasPrefix("ckpt-"), name.hasSuffix(".ckpt") else { return nil }
        let digits = name.dropFirst(5).dropLast(5)
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }

    /// The newest checkpoint among `entries` below `lsn`. It is kept beside the one at `lsn`, and with it the segments
    /// after it, so that recovery can fall back to it when the newer one fails its checksum.
    static func previousLSN(below lsn: UInt64, in entries: [String]) -> UInt64? {
        entries.compactMap(Self.lsn(fromFileName:)).filter { $0 < lsn }.max()
    }

    /// What recovery did after setting newer checkpoints aside (damaged, or their snapshot unreadable), for their repairs.
    static func fellBack(to lsn: UInt64) -> String {
        "recovery fell back to the previous checkpoint, \(fileName(lsn: lsn)), and replays the records after LSN \(lsn)"
    }

    static func encode(_ checkpoint: Checkpoint) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.replaceSubrange(0..<8, with: magic)
        bytes.setInteger(UInt16(1), at: 8)
        bytes.setInteger(checkpoint.lsn, at: 16)
        bytes.setInteger(checkpoint.createdNanoseconds, at: 24)
        bytes.setInteger(UInt64(checkpoint.snapshot.count), at: 32)
        bytes.append(contentsOf: checkpoint.snapshot)
        bytes.setInteger(CRC32C.mask(crc(of: bytes)), at: 40)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> Checkpoint? {
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic,
            bytes.getInteger(at: 8, as: UInt16.self) == 1,
            bytes.getInteger(at: 32, as: UInt64.self) == UInt64(bytes.count - headerSize),
            bytes.getInteger(at: 44, as: UInt32.self) == 0,
            bytes.getInteger(at: 40, as: UInt32.self) == CRC32C.mask(crc(of: bytes))
        else { return nil }
        return Checkpoint(
            lsn: bytes.getInteger(at: 16),
            createdNanoseconds: bytes.getInteger(at: 24),
            snapshot: Array(bytes[headerSize...])
        )
    }

    private static func crc(of bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { raw in
            let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<40]))
            return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[headerSize...]), extending: head)
        }
    }
}
