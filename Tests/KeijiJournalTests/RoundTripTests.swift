import Foundation
import Synchronization
import Testing

@testable import KeijiJournal

/// Appending and reading back, on the real file system and on the simulated one.
struct RoundTripTests {
    enum Backend: String, CaseIterable, CustomTestStringConvertible {
        case posix, simulated
        var testDescription: String { rawValue }
    }

    /// Runs `body` with a journal directory and options on the chosen backend.
    func withJournalDirectory(
        _ backend: Backend, _ body: (String, JournalOptions) async throws -> Void
    ) async throws {
        switch backend {
        case .posix:
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            try await body(directory.path + "/journal", testOptions())
        case .simulated:
            try await body("/journal", testOptions(io: SimulatedFileSystem()))
        }
    }

    @Test(arguments: Backend.allCases)
    func recordsOfEverySizeRoundTripAcrossFramesAndSegments(_ backend: Backend) async throws {
        try await withJournalDirectory(backend) { path, options in
            let journal = try Journal.open(directory: path, options: options)
            #expect(journal.recovery.isClean && journal.recovery.lastLSN == 0)
            let sizes = [0, 1, 200, 64 << 10, options.maxRecordSize, 3, 700, 0]
            var expected: [[UInt8]] = []
            for (index, size) in sizes.enumerated() {
                let record = payload(for: UInt64(index + 1), size: size)
                expected.append(record)
                #expect(try await journal.append(record) == UInt64(index + 1))
            }
            // A batch that spans several frames (maxBatchBytes is 64 KiB).
            let batch = (0..<300).map { payload(for: UInt64(sizes.count + 1 + $0), size: 400) }
            expected += batch
            let range = try await journal.append(contentsOf: batch)
            #expect(range == UInt64(sizes.count + 1)...UInt64(sizes.count + 300))
            try await journal.close()

            let reopened = try Journal.open(directory: path, options: options)
            #expect(reopened.recovery.isClean, "a clean close needs no repair: \(reopened.recovery.repairs)")
            #expect(reopened.recovery.cleanShutdown)
            #expect(reopened.recovery.lastLSN == UInt64(expected.count))
            let records = try reopened.contents.records()
            #expect(records.count == expected.count)
            #expect(records.map(\.bytes) == expected, "every record reads back byte for byte")
            #expect(records.map(\.lsn) == Array(1...UInt64(expected.count)))
            #expect(try reopened.contents.segments().count > 3, "small segments must have rolled")
            // Reading from the middle starts at the right record.
            #expect(try reopened.contents.records(from: 100, through: 102).map(\.lsn) == [100, 101, 102])
            #expect(try await reopened.append([9]) == UInt64(expected.count + 1))
            try await reopened.close()
        }
    }

    @Test(arguments: Backend.allCases)
    func reopeningWithoutCloseContinuesTheTail(_ backend: Backend) async throws {
        try await withJournalDirectory(backend) { path, options in
            var options = options
            options.segmentSize = 1 << 20
            let first = try Journal.open(directory: path, options: options)
            try await appendPayloads(first, through: 20)
            try await first.close()
            let second = try Journal.open(directory: path, options: options)
            try await appendPayloads(second, through: 40)
            try await second.close()
            let third = try Journal.open(directory: path, options: options)
            #expect(third.recovery.isClean)
            #expect(try verifiedLSNs(third.contents) == Array(1...40))
            #expect(try third.contents.segments().count == 1, "an intact, unsealed tail is continued, not rolled")
            try await third.close()
        }
    }

    @Test func concurrentProducersShareSyncs() async throws {
        let fs = SimulatedFileSystem()
        var options = testOptions(io: fs, segmentSize: 64 << 20)
        options.compressionThreshold = 512
        let journal = try Journal.open(directory: "/j", options: options)
        // Each sync takes time, as a disk's does: appends that arrive meanwhile wait and share the next one. With
        // instant syncs a producer can find the journal idle every time and lead its own (caller-led commits),
        // which is what a journal on a disk that syncs in no time should do, and not what this test is about. A
        // leading append holds its thread, and on Swift's global pool (a thread per core) the others may all be
        // held by other suites in a full parallel run, so that each producer found the journal idle in turn
        // (3,200 syncs, seen in soaks even with a first sync of 500 ms). The producers run on threads of their
        // own, and the first sync takes 500 ms, long enough for them to queue behind it.
        let syncsSeen = Mutex(0)
        fs.inject { operation in
            if case .sync = operation {
                let first = syncsSeen.withLock { seen in
                    seen += 1
                    return seen == 1
                }
                usleep(first ? 500_000 : 2_000)
            }
            return nil
        }
        let syncsBefore = fs.syncCount
        let producers = DedicatedThreadsExecutor(threads: 8)
        defer { producers.shutdown() }
        let lsns = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for producer in 0..<64 {
                group.addTask(executorPreference: producers) {
                    var mine: [UInt64] = []
                    for i in 0..<50 { mine.append(try await journal.append(payload(for: UInt64(producer * 1000 + i), size: 200))) }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(lsns).count == 3200 && lsns.max() == 3200, "every append gets a distinct LSN, no holes")
        let syncs = fs.syncCount - syncsBefore
        #expect(syncs < 3200, "group commit shares one fdatasync per batch (saw \(syncs) syncs for 3200 appends)")
        #expect(journal.durableLSN == 3200)
        try await journal.close()
    }

    /// The lock is the directory's own: deleting a file in it (a `LOCK` file, as the lock once was, is the kind of
    /// file people delete when something looks stuck) let a second writer in beside a running scheduler, and both
    /// wrote records with the same LSNs.
    @Test func aSecondOpenIsRefusedWhileTheFirstHoldsTheLock() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let journal = try Journal.open(directory: directory.path, options: testOptions())
        #expect { try Journal.open(directory: directory.path, options: testOptions()) } throws: { error in
            (error as? JournalError)?.code == .locked
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where !name.hasPrefix("seg-") {
            try FileManager.default.removeItem(atPath: directory.path + "/" + name)
        }
        #expect { try Journal.open(directory: directory.path, options: testOptions()) } throws: { error in
            (error as? JournalError)?.code == .locked
        }
        try await journal.close()
        try await journal.close()  // idempotent
        let again = try Journal.open(directory: directory.path, options: testOptions())
        try await again.close()
    }

    /// A process of a keiji from before the directory's lock (a scheduler still running through an upgrade) holds
    /// the `LOCK` file's lock alone: this one's open is refused too, not a second writer.
    @Test func anOpenIsRefusedWhileAnOlderKeijiHoldsTheLockFile() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await Journal.open(directory: directory.path, options: testOptions()).close()
        let older = open(directory.path + "/LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        // A child another test forks in this process holds the closed journal's descriptions until it execs (the
        // journal's own open waits that out too): the lock is taken once they are gone.
        var locked = false
        for _ in 0..<500 where !locked {
            locked = flock(older, LOCK_EX | LOCK_NB) == 0
            if !locked { usleep(10_000) }
        }
        #expect(older >= 0 && locked)
        await #expect { try await Journal.open(directory: directory.path, options: testOptions()).close() } throws: { error in
            (error as? JournalError)?.code == .locked
        }
        close(older)
        try await Journal.open(directory: directory.path, options: testOptions()).close()
    }

    @Test func oversizedRecordsAreRefusedWithoutHarm() async throws {
        let journal = try Journal.open(directory: "/j", options: testOptions(io: SimulatedFileSystem()))
        await #expect { try await journal.append([UInt8](repeating: 1, count: journal.options.maxRecordSize + 1)) } throws: { error in
            (error as? JournalError)?.code == .recordTooLarge
        }
        #expect(try await journal.append([1]) == 1)
        try await journal.close()
        await #expect { try await journal.append([1]) } throws: { error in (error as? JournalError)?.code == .closed }
    }

    @Test(arguments: [JournalOptions.Durability.none, .interval(milliseconds: 5)])
    func relaxedDurabilityModesStillRoundTrip(_ durability: JournalOptions.Durability) async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, durability: durability))
        try await appendPayloads(journal, through: 50)
        try await journal.close()
        let reopened = try Journal.open(directory: "/j", options: testOptions(io: fs))
        #expect(try verifiedLSNs(reopened.contents) == Array(1...50))
        try await reopened.close()
    }

    /// An append on an idle journal is written on the caller's thread, while the writer thread sleeps with no
    /// timer armed: the caller must wake it, or the interval's sync never comes.
    @Test func intervalSyncFollowsAnAppendItsCallerWrote() async throws {
        var options = testOptions(io: SimulatedFileSystem(), segmentSize: 1 << 20, durability: .interval(milliseconds: 5))
        options.segmentMaxAge = nil
        let journal = try Journal.open(directory: "/j", options: options)
        try await Task.sleep(for: .milliseconds(50))  // the writer thread is asleep by now, no timer armed
        // The first append syncs at once (no sync yet in this interval); the second, right after it, waits for
        // the interval's timer.
        #expect(try await journal.append([1]) == 1)
        #expect(try await journal.append([2]) == 2)
        let deadline = ContinuousClock.now + .seconds(20)
        while journal.durableLSN < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(journal.durableLSN == 2, "synced within the interval, without a later append or close")
        try await journal.close()
    }

    @Test func idleNoteVouchesForTheLastBatch() async throws {
        let fs = SimulatedFileSystem()
        var options = testOptions(io: fs, segmentSize: 1 << 20)
        options.idleNoteDelay = .milliseconds(20)
        let journal = try Journal.open(directory: "/j", options: options)
        try await appendPayloads(journal, through: 3)
        let name = try #require(try journal.contents.segments().last)
        func scan() -> SegmentScan { SegmentScanner().scan(fs.contents(of: "/j/" + name.fileName) ?? [], name: name) }
        // Wait for the note (up to a generous bound), not for a fixed time.
        let deadline = ContinuousClock.now + .seconds(60)
        while scan().maxSyncedThroughLSN < 3, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let scan = scan()
        // Only a note written after the third batch can carry synced-through 3 (a batch carries what was synced
        // before it). Under load an extra note may also land between batches; that is fine.
        #expect(scan.recordCount == 3 && scan.frameCount >= 4)
        #expect(scan.maxSyncedThroughLSN == 3, "a note after the last batch vouches for it")
        try await journal.close()
    }
}
