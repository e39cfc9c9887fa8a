import Testing

@testable import KeijiJournal

/// ALICE/CrashMonkey-style enumeration: run a workload on the simulated file system, stop it at every
/// mutating I/O operation in turn, build the file systems a power loss there could leave (unsynced writes
/// kept, dropped, torn or reordered; unsynced directory operations kept as a prefix), and recover each.
///
/// Invariants checked on every image:
/// 1. every acknowledged LSN is present with identical bytes (or covered by an acknowledged checkpoint);
/// 2. no LSN holds bytes that were never appended there;
/// 3. no holes;
/// 4. recovery is idempotent (a second open repairs nothing) and survives being interrupted itself.
struct CrashStateTests {
    /// What a workload saw acknowledged before the crash.
    struct Acknowledged {
        var lsns: Set<UInt64> = []
        var checkpointLSN: UInt64 = 0
    }

    typealias Workload = @Sendable (Journal, inout Acknowledged) async throws -> Void

    static let appendAndRoll: Workload = { journal, acknowledged in
        // Single records, a batch, records large enough to compress, and several rolls (segments are small).
        for _ in 0..<8 { acknowledged.lsns.insert(try await journal.append(payload(for: journal.lastLSN + 1))) }
        let first = journal.lastLSN + 1
        let range = try await journal.append(contentsOf: (first..<(first + 5)).map { payload(for: $0) })
        acknowledged.lsns.formUnion(range)
        for _ in 0..<8 { acknowledged.lsns.insert(try await journal.append(payload(for: journal.lastLSN + 1))) }
        try await journal.close()
    }

    /// ``appendAndRoll`` with a roll before a segment is full, so the seal has zeros after it to cut.
    static let appendRollEarlyAndRoll: Workload = { journal, acknowledged in
        for _ in 0..<4 { acknowledged.lsns.insert(try await journal.append(payload(for: journal.lastLSN + 1))) }
        try await journal.roll()
        try await appendAndRoll(journal, &acknowledged)
    }

    static let checkpointAndCompact: Workload = { journal, acknowledged in
        for _ in 0..<14 { acknowledged.lsns.insert(try await journal.append(payload(for: journal.lastLSN + 1))) }
        try await journal.writeCheckpoint(Array("state@5".utf8), at: 5)
        acknowledged.checkpointLSN = 5
        try await journal.writeCheckpoint(Array("state@10".utf8), at: 10)
        acknowledged.checkpointLSN = 10
        try await journal.compact()
        for _ in 0..<4 { acknowledged.lsns.insert(try await journal.append(payload(for: journal.lastLSN + 1))) }
        try await journal.close()
    }

    static func options(_ fs: SimulatedFileSystem, preallocation: Int = 0) -> JournalOptions {
        var options = testOptions(io: fs, segmentSize: 4096 + 1536, preallocation: preallocation)
        options.retention = .init(segments: 0)
        return options
    }

    /// Runs `workload` on a fresh file system that crashes at mutating operation `crashAt` (nil: never).
    static func run(_ workload: Workload, crashAt: Int?, preallocation: Int = 0) async -> (SimulatedFileSystem, Acknowledged) {
        let fs = SimulatedFileSystem()
        fs.crash(atOperation: crashAt)
        var acknowledged = Acknowledged()
        if let journal = try? Journal.open(directory: "/j", options: options(fs, preallocation: preallocation)) {
            do { try await workload(journal, &acknowledged) } catch { try? await journal.close() }
        }
        return (fs, acknowledged)
    }

    /// Recovers `image` and checks the invariants; returns the recovery info.
    @discardableResult
    static func recoverAndCheck(
        _ image: SimulatedFileSystem, _ acknowledged: Acknowledged, _ label: String, preallocation: Int = 0
    ) async throws -> RecoveryInfo {
        let journal = try Journal.open(directory: "/j", options: options(image, preallocation: preallocation))
        let checkpoint = journal.latestCheckpoint?.lsn ?? 0
        #expect(checkpoint >= acknowledged.checkpointLSN, "\(label): an acknowledged checkpoint is durable")
        let first = try journal.contents.segments().first?.baseLSN ?? 1
        let lsns = try verifiedLSNs(journal.contents)  // invariants 2 and 3
        let present = Set(lsns)
        for lsn in acknowledged.lsns where lsn > checkpoint || lsn >= first {
            #expect(present.contains(lsn), "\(label): acknowledged LSN \(lsn) is missing")
        }
        #expect(lsns.first.map { $0 <= checkpoint + 1 } ?? true, "\(label): records after the checkpoint start at \(checkpoint + 1)")
        try await journal.close()
        return journal.recovery
    }

    struct Coverage {
        var points = 0, repairedImages = 0, interruptedRecoveries = 0, acknowledgedMax = 0
        /// Distinct file systems recovered (by names and contents): the crash images must actually differ.
        var distinctImages: Set<[String: [UInt8]]> = []
        var repairKinds: Set<Repair.Kind> = []
    }

    func enumerate(_ workload: Workload, imagesPerPoint: Int, preallocation: Int = 0) async throws -> Coverage {
        let (full, _) = await Self.run(workload, crashAt: nil, preallocation: preallocation)
        let total = full.mutatingOperationCount
        #expect(total > 30, "the workload must exercise rolls and syncs (\(total) operations)")
        var coverage = Coverage(points: total + 1)
        for crashAt in 1...(total + 1) {
            let (fs, acknowledged) = await Self.run(workload, crashAt: crashAt, preallocation: preallocation)
            for (index, image) in fs.crashImages(seed: UInt64(crashAt), count: imagesPerPoint).enumerated() {
                let label = "crash at operation \(crashAt), image \(index)"
                let copy = image.crashImages(seed: 0, count: 2)[1]  // an identical copy, for the interrupted-recovery check
                coverage.distinctImages.insert(image.allContents(in: "/j"))
                let first = try await Self.recoverAndCheck(image, acknowledged, label, preallocation: preallocation)
                coverage.repairKinds.formUnion(first.repairs.map(\.kind))
                coverage.acknowledgedMax = max(coverage.acknowledgedMax, acknowledged.lsns.count)
                let second = try await Self.recoverAndCheck(image, acknowledged, label + ", reopened", preallocation: preallocation)
                #expect(second.isClean, "\(label): recovery is idempotent, but the second open repaired \(second.repairs)")
                if !first.isClean {
                    coverage.repairedImages += 1
                    coverage.interruptedRecoveries += try await interruptRecovery(of: copy, acknowledged, label, preallocation: preallocation)
                }
            }
        }
        return coverage
    }

    /// Crashes recovery itself at each of its operations, then recovers every resulting image.
    func interruptRecovery(of image: SimulatedFileSystem, _ acknowledged: Acknowledged, _ label: String, preallocation: Int = 0) async throws -> Int {
        let probe = image.crashImages(seed: 0, count: 2)[1]
        let before = probe.mutatingOperationCount
        if let journal = try? Journal.open(directory: "/j", options: Self.options(probe, preallocation: preallocation)) { try? await journal.close() }
        let steps = probe.mutatingOperationCount - before
        for step in 1...max(1, steps) {
            let attempt = image.crashImages(seed: 0, count: 2)[1]
            attempt.crash(atOperation: attempt.mutatingOperationCount + step)
            if let journal = try? Journal.open(directory: "/j", options: Self.options(attempt, preallocation: preallocation)) { try? await journal.close() }
            for (index, after) in attempt.crashImages(seed: UInt64(step), count: 3).enumerated() {
                try await Self.recoverAndCheck(after, acknowledged, "\(label), recovery crashed at step \(step), image \(index)", preallocation: preallocation)
            }
        }
        return max(1, steps)
    }

    @Test func appendAndRollSurvivesACrashAtEveryOperation() async throws {
        let coverage = try await enumerate(Self.appendAndRoll, imagesPerPoint: 8)
        print("crash states (append and roll): \(coverage.points) points, \(coverage.distinctImages.count) distinct images, repairs \(coverage.repairKinds)")
        #expect(coverage.distinctImages.count > coverage.points, "torn, dropped and reordered writes give more states than crash points")
        #expect(coverage.repairKinds.isSuperset(of: [.tornTailTruncated, .temporaryFileRemoved]), "\(coverage.repairKinds)")
        #expect(coverage.acknowledgedMax == 21 && coverage.repairedImages > 0 && coverage.interruptedRecoveries > 0)
    }

    /// The same (with one early roll, so a seal has zeros to cut) on segments the writer and every recovery
    /// fill with zeros ahead, 512 bytes at a time: a crash leaves frames torn, dropped or reordered inside
    /// space that already holds zeros, or a seal with its zeros not yet cut, and the zeros after the last
    /// frame must read as unused space, never as records or as damage that loses one.
    @Test func appendAndRollSurvivesACrashAtEveryOperationInPreallocatedSegments() async throws {
        let (full, _) = await Self.run(Self.appendRollEarlyAndRoll, crashAt: nil, preallocation: 512)
        let segments = full.allContents(in: "/j").filter { $0.key.hasSuffix(".jnl") }
        #expect(segments.count > 2 && segments.values.allSatisfy { (try? SegmentHeader.decode($0).get())?.isPreallocated == true })
        let unused = try segments.map { name, bytes in
            SegmentScanner().scan(bytes, name: try #require(SegmentName(fileName: String(name.split(separator: "/").last!)))).preallocatedBytes
        }
        #expect(unused.filter { $0 > 0 }.count == 1, "only the active segment has zeros after its last frame: \(unused)")
        let coverage = try await enumerate(Self.appendRollEarlyAndRoll, imagesPerPoint: 8, preallocation: 512)
        print("crash states (append and roll, preallocated): \(coverage.points) points, \(coverage.distinctImages.count) distinct images, repairs \(coverage.repairKinds)")
        #expect(coverage.distinctImages.count > coverage.points, "torn, dropped and reordered writes give more states than crash points")
        #expect(coverage.repairKinds.isSuperset(of: [.tornTailTruncated, .temporaryFileRemoved]), "\(coverage.repairKinds)")
        #expect(coverage.acknowledgedMax == 25 && coverage.repairedImages > 0 && coverage.interruptedRecoveries > 0)
    }

    @Test func checkpointAndCompactionSurviveACrashAtEveryOperation() async throws {
        let coverage = try await enumerate(Self.checkpointAndCompact, imagesPerPoint: 6)
        print("crash states (checkpoint and compaction): \(coverage.points) points, \(coverage.distinctImages.count) distinct images, repairs \(coverage.repairKinds)")
        #expect(coverage.distinctImages.count > coverage.points, "torn, dropped and reordered writes give more states than crash points")
        #expect(coverage.repairKinds.contains(.temporaryFileRemoved), "\(coverage.repairKinds)")
        #expect(coverage.acknowledgedMax == 18 && coverage.repairedImages > 0 && coverage.interruptedRecoveries > 0)
    }
}
