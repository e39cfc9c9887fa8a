import CCRC32C

/// CRC-32C (Castagnoli), hardware-accelerated where the CPU allows.
///
/// Stored checksums are *masked* (LevelDB's rotation plus constant), because the journal stores CRCs inside
/// data that other CRCs cover; an unmasked CRC of a CRC is weak.
public enum CRC32C {
    /// The CRC-32C of `bytes`, extending `crc` (start with 0).
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, extending crc: UInt32 = 0) -> UInt32 {
        keiji_crc32c_extend(crc, bytes.baseAddress, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8], extending crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, extending: crc) }
    }

    /// Whether the SSE4.2 / ARMv8 instruction path is in use.
    public static var isHardwareAccelerated: Bool { keiji_crc32c_is_hardware_accelerated() != 0 }

    private static let maskDelta: UInt32 = 0xA282_EAD8

    public static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ maskDelta
    }

    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rotated = masked &- maskDelta
        return (rotated >> 17) | (rotated << 15)
    }
}
