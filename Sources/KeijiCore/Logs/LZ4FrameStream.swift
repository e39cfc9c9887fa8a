import CLZ4
import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Compresses a file into an LZ4 frame file (what `lz4 -d` reads, with a content checksum) and reads one back, a chunk
/// at a time: a sealed log segment is as large as one run made it, and compressed whole in memory a 100 MB log cost
/// the scheduler 300 MB at its next run (decompressed whole, a tail of six 20 MB lines cost the CLI 290 MB).
enum LZ4FrameStream {
    /// Bytes read at a time; the output buffer is about as large.
    static let chunkSize = 1 << 20

    /// Writes `source`'s frame to `destination` (created 0600 or truncated) and syncs it. Throws a line naming the file
    /// that failed and why; the caller removes a partial `destination`.
    static func compress(_ source: String, to destination: String, chunkSize: Int = chunkSize) throws {
        let input: Int32
        switch RegularFile.open(source, flags: O_RDONLY) {
        case .success(let fd): input = fd
        case .failure(let failure): throw KeijiError(.io, "cannot read \(source): \(failure)")
        }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw KeijiError(.io, "cannot write \(destination): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createCompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw KeijiError(.io, "cannot create an LZ4 compression context")
        }
        defer { LZ4F_freeCompressionContext(context) }
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var frame = [UInt8](repeating: 0, count: max(Int(LZ4F_HEADER_SIZE_MAX), LZ4F_compressBound(chunkSize, &preferences)))

        func check(_ code: Int) throws -> Int {
            guard LZ4F_isError(code) == 0 else {
                throw KeijiError(.io, "cannot compress \(source): \(String(cString: LZ4F_getErrorName(code)))")
            }
            return code
        }
        func emit(_ count: Int) throws {
            guard frame.withUnsafeBytes({ FileSystem.writeAll(UnsafeRawBufferPointer(rebasing: $0[..<count]), to: output) }) else {
                throw KeijiError(.io, "cannot write \(destination): \(String(cString: strerror(errno)))")
            }
        }

        try emit(check(frame.withUnsafeMutableBytes { LZ4F_compressBegin(context, $0.baseAddress, $0.count, &preferences) }))
        while true {
            let count = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw KeijiError(.io, "cannot read \(source): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            try emit(check(frame.withUnsafeMutableBytes { out in
                chunk.withUnsafeBytes { LZ4F_compressUpdate(context, out.baseAddress, out.count, $0.baseAddress, count, nil) }
            }))
        }
        try emit(check(frame.withUnsafeMutableBytes { LZ4F_compressEnd(context, $0.baseAddress, $0.count, nil) }))
        guard fsync(output) == 0 else { throw KeijiError(.io, "cannot write \(destination): \(String(cString: strerror(errno)))") }
    }

    /// Calls `body` with `source`'s bytes (one or more concatenated frames) decompressed, at most `chunkSize` at a
    /// time, oldest first. Throws a line naming the file when it cannot be read, is damaged or ends mid-frame.
    static func decompress(_ source: String, chunkSize: Int = 64 << 10, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        // A segment a run replaced with a link or a FIFO is refused, not followed or waited on (RegularFile).
        let input: Int32
        switch RegularFile.open(source, flags: O_RDONLY) {
        case .success(let fd): input = fd
        case .failure(let failure): throw KeijiError(.io, "cannot read \(source): \(failure)")
        }
        defer { close(input) }
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw KeijiError(.io, "cannot create an LZ4 decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var output = [UInt8](repeating: 0, count: chunkSize)
        var expectingMore = 1
        while true {
            let count = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw KeijiError(.io, "cannot read \(source): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            var consumed = 0
            var produced = 0
            // Until this chunk is consumed and what it decoded is out (the context keeps what did not fit).
            repeat {
                var sourceSize = count - consumed
                var destinationSize = output.count
                let hint = output.withUnsafeMutableBytes { out in
                    chunk.withUnsafeBytes { LZ4F_decompress(context, out.baseAddress, &destinationSize, $0.baseAddress! + consumed, &sourceSize, nil) }
                }
                guard LZ4F_isError(hint) == 0 else {
                    throw KeijiError(.io, "\(source) is damaged: \(String(cString: LZ4F_getErrorName(hint)))")
                }
                if destinationSize > 0 { output.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<destinationSize])) } }
                consumed += sourceSize
                produced = destinationSize
                expectingMore = hint
            } while consumed < count || produced == output.count
        }
        guard expectingMore == 0 else { throw KeijiError(.io, "\(source) is damaged: it ends within a frame") }
    }
}
