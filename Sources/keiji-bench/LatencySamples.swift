/// Per-operation latencies in nanoseconds; percentiles by sorting (exact, and cheap at benchmark sizes).
struct LatencySamples: Sendable {
    private(set) var nanoseconds: [UInt64] = []

    init(expectedCount: Int = 0) {
        nanoseconds.reserveCapacity(expectedCount)
    }

    var count: Int { nanoseconds.count }

    @inline(__always)
    mutating func record(_ latency: UInt64) {
        nanoseconds.append(latency)
    }

    mutating func merge(_ other: LatencySamples) {
        nanoseconds.append(contentsOf: other.nanoseconds)
    }

    /// p50, p99 and the maximum, in microseconds; nil when nothing was recorded.
    func summary() -> LatencySummary? {
        guard !nanoseconds.isEmpty else { return nil }
        let sorted = nanoseconds.sorted()
        func percentile(_ p: Double) -> Double {
            // Nearest rank: the smallest sample with at least p of the samples at or below it.
            let rank = max(1, Int((p * Double(sorted.count)).rounded(.up)))
            return Double(sorted[min(rank, sorted.count) - 1]) / 1000
        }
        return LatencySummary(p50Microseconds: percentile(0.50), p99Microseconds: percentile(0.99),
                              maxMicroseconds: Double(sorted[sorted.count - 1]) / 1000)
    }
}

struct LatencySummary: Sendable, Codable {
    var p50Microseconds: Double
    var p99Microseconds: Double
    var maxMicroseconds: Double
}
