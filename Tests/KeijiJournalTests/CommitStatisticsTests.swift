import Foundation
import Synchronization
import Testing

@testable import KeijiJournal

/// ``JournalOptions/observer``: every group commit reports its records, bytes, sync and append latencies, the
/// plain figures the scheduler's metrics are made of.
struct CommitStatisticsTests {
    @Test func everyCommitReportsWhatItWroteAndHowLongItTook() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let seen = Mutex<[JournalCommitStatistics]>([])
        var options = testOptions(segmentSize: 64 << 20)
        options.observer = { statistics in seen.withLock { $0.append(statistics) } }
        let journal = try Journal.open(directory: directory.path + "/journal", options: options)
        _ = try await journal.append([UInt8](repeating: 1, count: 100))
        // Compressible and above the compression threshold: fewer bytes on disk than handed in.
        _ = try await journal.append(contentsOf: (0..<3).map { _ in [UInt8](repeating: 7, count: 4_000) })
        try await journal.close()

        let commits = seen.withLock { $0 }.filter { $0.records > 0 }
        #expect(commits.reduce(0) { $0 + $1.records } == 4, "\(commits)")
        #expect(commits.reduce(0) { $0 + $1.recordBytes } == 12_100)
        #expect(commits.reduce(0) { $0 + $1.appendSeconds.count } == 2, "one latency per append call")
        #expect(commits.allSatisfy { $0.syncSeconds != nil && $0.bytesWritten > 0 }, "sync durability syncs every batch")
        #expect(commits.allSatisfy { $0.appendSeconds.allSatisfy { $0 >= 0 } })
        let big = try #require(commits.first { $0.records == 3 })
        #expect(big.bytesWritten < big.recordBytes, "compressed: \(big)")
    }
}
