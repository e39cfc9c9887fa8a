import CLZ4

/// One independent LZ4 block, through the system liblz4. The caller stores both sizes (the frame header does).
enum LZ4Block {
    /// Compresses `source`, or returns `nil` when the result would not be smaller.
    static func compress(_ source: UnsafeRawBufferPointer) -> [UInt8]? {
        guard source.count > 0, source.count <= Int(LZ4_MAX_INPUT_SIZE) else { return nil }
        let bound = Int(LZ4_compressBound(Int32(source.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            LZ4_compress_default(
                source.baseAddress!.assumingMemoryBound(to: CChar.self),
                out.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(source.count),
                Int32(bound)
            )
        }
        guard written > 0, Int(written) < source.count else { return nil }
        output.removeLast(bound - Int(written))
        return output
    }

    /// Decompresses a block that must expand to exactly `rawLength` bytes; `nil` if it does not, or if it is
    /// malformed. `LZ4_decompress_safe` never writes past the capacity it is given.
    static func decompress(_ source: UnsafeRawBufferPointer, rawLength: Int) -> [UInt8]? {
        guard rawLength > 0, source.count > 0 else { return rawLength == 0 && source.count == 0 ? [] : nil }
        var output = [UInt8](repeating: 0, count: rawLength)
        let produced = output.withUnsafeMutableBytes { out in
            LZ4_decompress_safe(
                source.baseAddress!.assumingMemoryBound(to: CChar.self),
                out.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(source.count),
                Int32(rawLength)
            )
        }
        return produced == Int32(rawLength) ? output : nil
    }
}
