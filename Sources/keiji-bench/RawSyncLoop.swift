#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The machine's limit for durable appends: `pwrite` of one record at the end of a file, then `fdatasync`,
/// in a loop. Every durable journal append needs at least this, so it is the yardstick the journal's
/// figures are divided by.
///
/// The file is opened `O_RDWR | O_CREAT` (not `O_APPEND`, as the journal does not use it) and grows with
/// every write, as a journal segment does, so each sync also commits the new file size. It stays open between
/// ``run(seconds:)`` calls, so slices interleaved with a journal phase keep appending to one growing file.
///
/// With `preallocatedBytes`, the file is first filled with that many zeros and synced, and the records then
/// overwrite it from the start (wrapping at its end): the size never changes, so a sync has no file size to
/// commit, as in the journal's preallocated segments (`JournalOptions.preallocationBytes`).
final class RawSyncLoop {
    let path: String
    let recordBytes: Int
    private let fd: Int32
    private var offset: off_t = 0
    private let preallocatedBytes: off_t

    init(path: String, recordBytes: Int, preallocatedBytes: Int = 0) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchmarkFailure("open \(path): \(String(cString: strerror(errno)))") }
        self.path = path
        self.recordBytes = recordBytes
        self.preallocatedBytes = off_t(preallocatedBytes)
        if preallocatedBytes > 0 {
            let chunk = [UInt8](repeating: 0, count: 1 << 20)
            var written = 0
            while written < preallocatedBytes {
                let count = min(chunk.count, preallocatedBytes - written)
                guard pwrite(fd, chunk, count, off_t(written)) == count else {
                    throw BenchmarkFailure("pwrite \(path): \(String(cString: strerror(errno)))")
                }
                written += count
            }
            guard fsync(fd) == 0 else { throw BenchmarkFailure("fsync \(path): \(String(cString: strerror(errno)))") }
        }
    }

    deinit { close(fd) }

    /// Appends and syncs records for `seconds`; every call's latency goes into `latencies`. Returns how many.
    func run(seconds: Double, latencies: inout LatencySamples) throws -> Int {
        let record = [UInt8](repeating: UInt8(ascii: "x"), count: recordBytes)
        var count = 0
        let deadline = MonotonicClock.now() + UInt64(seconds * 1e9)
        var now = MonotonicClock.now()
        try record.withUnsafeBytes { buffer in
            while now < deadline {
                let before = now
                if preallocatedBytes > 0, offset + off_t(buffer.count) > preallocatedBytes { offset = 0 }
                guard pwrite(fd, buffer.baseAddress, buffer.count, offset) == buffer.count else {
                    throw BenchmarkFailure("pwrite \(path): \(String(cString: strerror(errno)))")
                }
                guard fdatasync(fd) == 0 else {
                    throw BenchmarkFailure("fdatasync \(path): \(String(cString: strerror(errno)))")
                }
                offset += off_t(buffer.count)
                now = MonotonicClock.now()
                latencies.record(now - before)
                count += 1
            }
        }
        return count
    }
}
