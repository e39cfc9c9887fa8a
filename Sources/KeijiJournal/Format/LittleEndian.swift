/// Little-endian integer access on byte arrays: every integer in the journal format is little-endian.
extension Array where Element == UInt8 {
    @inline(__always)
    func getInteger<T: FixedWidthInteger>(at offset: Int, as: T.Type = T.self) -> T {
        var value: T = 0
        withUnsafeBytes { raw in
            value = T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        return value
    }

    @inline(__always)
    mutating func setInteger<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeMutableBytes { raw in raw.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }

    @inline(__always)
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends an unsigned LEB128 varint.
    @inline(__always)
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
}

extension UnsafeRawBufferPointer {
    /// Reads an unsigned LEB128 varint at `offset`, advancing it. Returns `nil` when the bytes run out or the
    /// varint is longer than 10 bytes.
    @inline(__always)
    func readVarint(at offset: inout Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while offset < count && shift < 64 {
            let byte = self[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }
}

/// Rounds `n` up to a multiple of 8: frames start on 8-byte boundaries, so recovery can probe for intact
/// frames after damage at every aligned offset instead of every byte.
@inline(__always)
func alignedTo8(_ n: Int) -> Int { (n + 7) & ~7 }
