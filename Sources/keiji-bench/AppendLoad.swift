import KeijiJournal

/// Drives appends into an open journal for a fixed time and measures what came back acknowledged.
enum AppendLoad {
    struct Outcome: Sendable {
        var records: Int
        var seconds: Double
        /// One sample per `append` call (per batch for ``batches(into:batchSize:from:seconds:)``).
        var latencies: LatencySamples
    }

    /// `producers` tasks, each looping `append` of one record and awaiting it, until `seconds` have passed.
    /// Producer `p` takes records `p, p + producers, …` of `pool`, so concurrent batches hold different records.
    static func producers(
        _ producers: Int, into journal: Journal, from pool: [[UInt8]], seconds: Double
    ) async throws -> Outcome {
        let start = MonotonicClock.now()
        let deadline = start + UInt64(seconds * 1e9)
        let latencies = try await withThrowingTaskGroup(of: LatencySamples.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var samples = LatencySamples(expectedCount: 1 << 14)
                    var index = producer % pool.count
                    var now = MonotonicClock.now()
                    while now < deadline {
                        let before = now
                        _ = try await journal.append(pool[index])
                        now = MonotonicClock.now()
                        samples.record(now - before)
                        index += producers
                        if index >= pool.count { index -= pool.count }
                    }
                    return samples
                }
            }
            var all = LatencySamples()
            for try await samples in group { all.merge(samples) }
            return all
        }
        let end = MonotonicClock.now()
        return Outcome(records: latencies.count, seconds: MonotonicClock.seconds(from: start, to: end), latencies: latencies)
    }

    /// One task looping `append(contentsOf:)` of `batchSize` consecutive records of `pool`.
    static func batches(
        into journal: Journal, batchSize: Int, from pool: [[UInt8]], seconds: Double
    ) async throws -> Outcome {
        precondition(pool.count >= batchSize)
        var latencies = LatencySamples(expectedCount: 1 << 12)
        var next = 0
        var records = 0
        let start = MonotonicClock.now()
        let deadline = start + UInt64(seconds * 1e9)
        var now = start
        while now < deadline {
            if next + batchSize > pool.count { next = 0 }
            let batch = Array(pool[next..<(next + batchSize)])
            next += batchSize
            let before = now
            _ = try await journal.append(contentsOf: batch)
            now = MonotonicClock.now()
            latencies.record(now - before)
            records += batchSize
        }
        return Outcome(records: records, seconds: MonotonicClock.seconds(from: start, to: now), latencies: latencies)
    }

    /// Appends `count` records of `pool` (cycling) in batches of `batchSize`, as fast as the journal takes them.
    static func fill(_ journal: Journal, count: Int, batchSize: Int, from pool: [[UInt8]]) async throws {
        var written = 0
        var next = 0
        while written < count {
            let size = min(batchSize, count - written)
            if next + size > pool.count { next = 0 }
            _ = try await journal.append(contentsOf: Array(pool[next..<(next + size)]))
            next += size
            written += size
        }
    }
}
