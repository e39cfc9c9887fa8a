import KeijiJournal

/// Replay and recovery on a large journal: what a scheduler pays at every start.
///
/// The journal is written in `none` mode with large batches (fast, and the same frames a busy scheduler
/// produces), closed, then read end to end with ``JournalDirectory/forEachRecord(from:through:_:)`` and
/// reopened with ``Journal/open(directory:options:)``, whose recovery scans every segment.
/// The files were just written, so both reads come from the page cache: this measures the journal's CPU
/// cost (checksums, LZ4, record splitting), not the disk.
enum ReplayMeasurement {
    static func run(directory: String, records count: Int, batchSize: Int, pool: [[UInt8]]) async throws -> ReplayResult {
        var options = JournalOptions()
        options.durability = .none
        let writeStart = MonotonicClock.now()
        let journal = try Journal.open(directory: directory, options: options)
        try await AppendLoad.fill(journal, count: count, batchSize: batchSize, from: pool)
        try await journal.close()
        let writeSeconds = MonotonicClock.seconds(from: writeStart, to: MonotonicClock.now())

        let contents = JournalDirectory(path: directory)
        var delivered = 0
        var rawBytes = 0
        let replayStart = MonotonicClock.now()
        try contents.forEachRecord { _, bytes in
            delivered += 1
            rawBytes += bytes.count
        }
        let replaySeconds = MonotonicClock.seconds(from: replayStart, to: MonotonicClock.now())
        guard delivered == count else {
            throw BenchmarkFailure("replay delivered \(delivered) records, expected \(count)")
        }

        let openStart = MonotonicClock.now()
        let reopened = try Journal.open(directory: directory)
        let openSeconds = MonotonicClock.seconds(from: openStart, to: MonotonicClock.now())
        let recovery = reopened.recovery
        try await reopened.close()

        let stats = try contents.stats()
        return ReplayResult(
            records: delivered, rawRecordBytes: rawBytes, storedBytes: stats.totalBytes,
            segments: stats.segments.count, writeSeconds: writeSeconds,
            replaySeconds: replaySeconds,
            replayRecordsPerSecond: Double(delivered) / replaySeconds,
            replayMegabytesPerSecond: Double(rawBytes) / 1e6 / replaySeconds,
            openSeconds: openSeconds, openRecordsScanned: recovery.recordsScanned,
            openRecoveryScanSeconds: recovery.durationSeconds,
            compressionRatio: stats.compressionRatio)
    }
}
