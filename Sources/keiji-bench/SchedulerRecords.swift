import KeijiCore

/// Deterministic journal records shaped like the scheduler's: single-line JSON of 150–250 bytes, in the mix
/// a busy scheduler writes (80% `run.started`, 15% `run.finished`, 5% operator commands).
///
/// Unique fields (run ids, pids, LSNs, millisecond timestamps) are random or increasing as they would be in
/// production, so compression figures are not flattered by repetition. A `run.finished` refers to a run
/// started shortly before it, as it would in the real journal.
struct SchedulerRecords {
    private var random: SeededGenerator
    private var sequence: UInt64 = 0
    /// The schedule slot being fired: many tasks share a slot, the slot advances a minute at a time.
    private var slot = CivilTime(year: 2026, month: 11, day: 23, hour: 4).secondsSinceEpoch
    private var clockMilliseconds: Int64 = 0
    private var openRuns: [(task: String, runId: String, slot: String, attempt: Int)] = []

    private static let taskKinds = [
        "backup-db", "rotate-logs", "sync-s3", "report-sales", "vacuum-pg", "send-digest", "renew-certs",
        "reindex-search", "purge-cache", "export-metrics", "thumbnail-batch", "billing-close",
    ]
    private static let commands = ["task.pause", "task.resume", "task.trigger", "task.update", "run.cancel"]
    private static let operators = ["cli:uid=1000", "cli:uid=1001", "api:token=ops", "api:token=deploy"]

    init(seed: UInt64 = 0x6B65_696A_6921) {
        random = SeededGenerator(seed: seed)
        clockMilliseconds = slot * 1000
    }

    /// `count` records, generated in order.
    mutating func make(_ count: Int) -> [[UInt8]] {
        (0..<count).map { _ in next() }
    }

    mutating func next() -> [UInt8] {
        sequence += 1
        clockMilliseconds += Int64.random(in: 0...40, using: &random)
        if sequence % 400 == 0 { slot += 60 }
        let roll = Int.random(in: 0..<100, using: &random)
        let text: String
        if roll < 80 || (roll < 95 && openRuns.isEmpty) {
            text = started()
        } else if roll < 95 {
            text = finished()
        } else {
            text = command()
        }
        return Array(text.utf8)
    }

    private mutating func started() -> String {
        let task = taskName()
        let runId = uuid()
        let slotText = ISO8601.string(fromSeconds: slot)
        let attempt = Int.random(in: 0..<20, using: &random) == 0 ? 2 : 1
        openRuns.append((task, runId, slotText, attempt))
        if openRuns.count > 256 { openRuns.removeFirst(openRuns.count - 256) }
        let pid = Int.random(in: 1000..<4_000_000, using: &random)
        return #"{"type":"run.started","task":"\#(task)","runId":"\#(runId)","slot":"\#(slotText)","#
            + #""attempt":\#(attempt),"pid":\#(pid),"at":"\#(now())","lsn":\#(sequence)}"#
    }

    private mutating func finished() -> String {
        let run = openRuns.remove(at: Int.random(in: 0..<openRuns.count, using: &random))
        let exitCode = Int.random(in: 0..<50, using: &random) == 0 ? [1, 2, 124, 137].randomElement(using: &random)! : 0
        let duration = Int.random(in: 20...900_000, using: &random)
        return #"{"type":"run.finished","task":"\#(run.task)","runId":"\#(run.runId)","slot":"\#(run.slot)","#
            + #""attempt":\#(run.attempt),"exitCode":\#(exitCode),"durationMs":\#(duration),"#
            + #""at":"\#(now())","lsn":\#(sequence)}"#
    }

    private mutating func command() -> String {
        let name = Self.commands.randomElement(using: &random)!
        let by = Self.operators.randomElement(using: &random)!
        return #"{"type":"command","command":"\#(name)","task":"\#(taskName())","requestId":"\#(uuid())","#
            + #""by":"\#(by)","at":"\#(now())","lsn":\#(sequence)}"#
    }

    private mutating func taskName() -> String {
        "\(Self.taskKinds.randomElement(using: &random)!)-\(Int.random(in: 1...40, using: &random))"
    }

    private func now() -> String {
        ISO8601.string(fromMilliseconds: clockMilliseconds)
    }

    /// A version-4 UUID in its usual text form, from the seeded generator.
    private mutating func uuid() -> String {
        let high = (random.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x4000
        let low = (random.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        let hex = Self.hex(high, digits: 16) + Self.hex(low, digits: 16)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20])
            + "-" + String(c[20..<32])
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: digits - text.count) + text
    }
}

/// Sizes of a set of records, for the report.
struct RecordSizes: Sendable, Codable {
    var count: Int
    var meanBytes: Double
    var minBytes: Int
    var maxBytes: Int

    init(_ records: [[UInt8]]) {
        count = records.count
        let sizes = records.map(\.count)
        meanBytes = records.isEmpty ? 0 : Double(sizes.reduce(0, +)) / Double(records.count)
        minBytes = sizes.min() ?? 0
        maxBytes = sizes.max() ?? 0
    }
}
