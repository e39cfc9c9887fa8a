import CLZ4

/// The LZ4 *frame* format (what the `lz4` command reads and writes), with a content checksum, whole in memory. Used
/// to export segments (and by tests to read exports back); KeijiCore's `LZ4FrameStream` writes and reads sealed log
/// segments a chunk at a time. The journal itself stores bare LZ4 blocks.
public enum LZ4FrameFile {
    public static func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.frameInfo.contentSize = UInt64(bytes.count)
        let bound = LZ4F_compressFrameBound(bytes.count, &preferences)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            bytes.withUnsafeBytes { input in
                LZ4F_compressFrame(out.baseAddress, bound, input.baseAddress, bytes.count, &preferences)
            }
        }
        guard LZ4F_isError(written) == 0 else {
            throw JournalError(.io, "LZ4 frame compression failed: \(String(cString: LZ4F_getErrorName(written)))")
        }
        output.removeLast(bound - written)
        return output
    }

    /// Decompresses a whole LZ4 frame file (one or more concatenated frames).
    public static func decompress(_ bytes: [UInt8]) throws -> [UInt8] {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw JournalError(.io, "cannot create an LZ4 decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var consumed = 0
        var expectingMore = 1
        while consumed < bytes.count {
            var sourceSize = bytes.count - consumed
            var destinationSize = chunk.count
            let hint = chunk.withUnsafeMutableBytes { out in
                bytes.withUnsafeBytes { input in
                    LZ4F_decompress(context, out.baseAddress, &destinationSize, input.baseAddress! + consumed, &sourceSize, nil)
                }
            }
            guard LZ4F_isError(hint) == 0 else {
                throw JournalError(.corruption, "LZ4 frame is damaged: \(String(cString: LZ4F_getErrorName(hint)))")
            }
            output.append(contentsOf: chunk[0..<destinationSize])
            consumed += sourceSize
            expectingMore = hint
            if sourceSize == 0 && destinationSize == 0 { break }
        }
        guard expectingMore == 0 else { throw JournalError(.corruption, "LZ4 frame file is truncated") }
        return output
    }
}
