import Foundation

/// The checkpoint snapshot of ``SchedulerState``. Decoding the whole state as JSON cost ~0.3 s for 1,000
/// tasks (4 MB, mostly their 20 remembered runs each), so the runs, the bulk of it, go in a binary section
/// after the JSON of the rest (definitions, flags: few, varied, and best kept readable and extensible).
/// A snapshot that starts with `{` is the all-JSON form every checkpoint had before, and still decodes.
///
/// Version 1: `u8 0x01`, `varint n`, n bytes of the state's JSON with every task's `recentRuns` and the
/// `activeRuns` left empty, `varint` active runs, each `RunStart` fields and `sint startedAt`; then `varint`
/// tasks with runs, each `string name`, `varint count` and the runs (``RunSummary`` fields, optional ones
/// behind a flag byte). Varints and strings as in ``BinaryRecordCodec``.
enum SnapshotCodec {
    static let version1: UInt8 = 0x01

    static func encode(_ state: SchedulerState) throws -> [UInt8] {
        var rest = state
        rest.activeRuns = [:]
        for name in rest.tasks.keys { rest.tasks[name]?.recentRuns = [] }
        let json = try StateLoader.snapshotEncoder.encode(rest)
        var out = BinaryRecordCodec.Writer()
        out.byte(version1)
        out.unsigned(UInt64(json.count))
        out.bytes.append(contentsOf: json)
        out.unsigned(UInt64(state.activeRuns.count))
        for run in state.activeRuns.values.sorted(by: { $0.start.runID < $1.start.runID }) {
            let record = BinaryRecordCodec.encode(JournalEntry(at: run.startedAt, .runStarted(run.start))) ?? []
            out.unsigned(UInt64(record.count))
            out.bytes.append(contentsOf: record)
        }
        let named = state.tasks.filter { !$0.value.recentRuns.isEmpty }.sorted { $0.key < $1.key }
        out.unsigned(UInt64(named.count))
        for (name, task) in named {
            out.string(name.rawValue)
            out.unsigned(UInt64(task.recentRuns.count))
            for run in task.recentRuns { write(run, to: &out) }
        }
        return out.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> SchedulerState {
        guard bytes.first != UInt8(ascii: "{") else { return try StateLoader.snapshotDecoder.decode(SchedulerState.self, from: Data(bytes)) }
        return try bytes.withUnsafeBytes { raw in
            guard raw.first == version1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown snapshot format version \(raw.first ?? 0)"))
            }
            var reader = BinaryRecordCodec.Reader(raw)
            reader.subject = "checkpoint snapshot"
            reader.offset = 1
            let json = try reader.utf8("state")
            var state = try StateLoader.snapshotDecoder.decode(SchedulerState.self, from: Data(json))
            for _ in 0..<(try reader.count("active runs")) {
                let entry = try BinaryRecordCodec.decode(try reader.utf8("active run"))
                guard case .runStarted(let start) = entry.event else { throw reader.failure("an active run is not a run.started") }
                state.activeRuns[start.runID] = ActiveRun(start: start, startedAt: entry.at)
            }
            for _ in 0..<(try reader.count("tasks")) {
                let name = try reader.taskName()
                let count = try reader.count("runs")
                var runs: [RunSummary] = []
                runs.reserveCapacity(count)
                for _ in 0..<count { runs.append(try read(&reader)) }
                guard state.tasks[name] != nil else { throw reader.failure("runs of \(name), a task the snapshot does not hold") }
                state.tasks[name]?.recentRuns = runs
            }
            try reader.expectEnd()
            return state
        }
    }

    private enum Flag {
        static let slot: UInt8 = 1 << 0, startedAt: UInt8 = 1 << 1, exitCode: UInt8 = 1 << 2, signal: UInt8 = 1 << 3
        static let lateness: UInt8 = 1 << 4, message: UInt8 = 1 << 5
    }

    private static func write(_ run: RunSummary, to out: inout BinaryRecordCodec.Writer) {
        var flags: UInt8 = 0
        if run.slot != nil { flags |= Flag.slot }
        if run.startedAt != nil { flags |= Flag.startedAt }
        if run.exitCode != nil { flags |= Flag.exitCode }
        if run.signal != nil { flags |= Flag.signal }
        if run.latenessMs != nil { flags |= Flag.lateness }
        if run.message != nil { flags |= Flag.message }
        out.byte(flags)
        out.string(run.runID)
        if let slot = run.slot { out.signed(slot) }
        if let startedAt = run.startedAt { out.signed(startedAt) }
        out.signed(run.finishedAt)
        out.string(run.outcome)
        if let code = run.exitCode { out.signed(Int64(code)) }
        if let signal = run.signal { out.signed(Int64(signal)) }
        if let lateness = run.latenessMs { out.signed(lateness) }
        out.signed(Int64(run.attempt))
        out.string(run.trigger)
        if let message = run.message { out.string(message) }
    }

    private static func read(_ reader: inout BinaryRecordCodec.Reader) throws -> RunSummary {
        let flags = try reader.byte("flags")
        try reader.expectFlags(flags, within: Flag.slot | Flag.startedAt | Flag.exitCode | Flag.signal | Flag.lateness | Flag.message)
        let runID = try reader.string("runID")
        let slot = flags & Flag.slot != 0 ? try reader.signed("slot") : nil
        let startedAt = flags & Flag.startedAt != 0 ? try reader.signed("startedAt") : nil
        let finishedAt = try reader.signed("finishedAt")
        let outcome = try reader.string("outcome")
        let exitCode = flags & Flag.exitCode != 0 ? try reader.int32("exitCode") : nil
        let signal = flags & Flag.signal != 0 ? try reader.int32("signal") : nil
        let lateness = flags & Flag.lateness != 0 ? try reader.signed("latenessMs") : nil
        let attempt = try reader.int("attempt")
        let trigger = try reader.string("trigger")
        let message = flags & Flag.message != 0 ? try reader.string("message") : nil
        return RunSummary(runID: runID, slot: slot, startedAt: startedAt, finishedAt: finishedAt, outcome: outcome, exitCode: exitCode,
                          signal: signal, latenessMs: lateness, attempt: attempt, trigger: trigger, message: message)
    }
}

extension BinaryRecordCodec.Reader {
    /// A count of items that follow, each at least one byte long: bounded by the bytes left.
    mutating func count(_ field: String) throws -> Int {
        let value = try unsigned(field)
        guard value <= UInt64(bytes.count - offset) else { throw failure("\(field) count \(value) exceeds the bytes left") }
        return Int(value)
    }
}
