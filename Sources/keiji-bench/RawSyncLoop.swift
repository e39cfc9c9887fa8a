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
/// every write, as a journal segment does, so each sync also commits the new file size.
enum RawSyncLoop {
    static func run(path: String, recordBytes: Int, seconds: Double) throws -> PhaseResult {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchmarkFailure("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let record = [UInt8](repeating: UInt8(ascii: "x"), count: recordBytes)
        var latencies = LatencySamples(expectedCount: 1 << 16)
        var offset: off_t = 0
        let start = MonotonicClock.now()
        let deadline = start + UInt64(seconds * 1e9)
        var now = start
        try record.withUnsafeBytes { buffer in
            while now < deadline {
                let before = now
                guard pwrite(fd, buffer.baseAddress, buffer.count, offset) == buffer.count else {
                    throw BenchmarkFailure("pwrite \(path): \(String(cString: strerror(errno)))")
                }
                guard fdatasync(fd) == 0 else {
                    throw BenchmarkFailure("fdatasync \(path): \(String(cString: strerror(errno)))")
                }
                offset += off_t(buffer.count)
                now = MonotonicClock.now()
                latencies.record(now - before)
            }
        }
        return PhaseResult(
            name: "raw-fdatasync", label: "raw pwrite+fdatasync, \(recordBytes) B",
            records: latencies.count, seconds: MonotonicClock.seconds(from: start, to: now),
            latency: latencies.summary())
    }
}
