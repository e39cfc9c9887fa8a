import Foundation

/// The checkpoint snapshot of ``SchedulerState``, written every 50,000 records and decoded at every start.
/// `JSONEncoder` on every task cost ~300 ms of CPU per checkpoint at 10,000 tasks (the largest single cost
/// of a busy firing path), so version 2 writes every task in binary, and only the small rest (LSN, flags,
/// last recovery) stays JSON. Older checkpoints still decode: version 1 (runs binary, the rest JSON) and the
/// all-JSON form, which starts with `{`. docs/journal-format.md §10 has both layouts byte by byte.
///
/// Version 2: `u8 0x02`, `varint n`, n bytes of the state's JSON with `tasks` and `activeRuns` empty, the
/// active runs as in version 1, then `varint` tasks in name order, each with its definition and runs.
///
/// Version 1: `u8 0x01`, `varint n`, n bytes of the state's JSON with every task's `recentRuns` and the
/// `activeRuns` left empty, `varint` active runs, each a length-prefixed binary `run.started` record; then
/// `varint` tasks with runs, each `string name`, `varint count` and the runs (``RunSummary`` fields, optional
/// ones behind a flag byte). Varints and strings as in ``BinaryRecordCodec``.
///
/// Version 3 is version 2 whose runs may carry their measured duration (``RunSummary/measuredMs``, flag bit 6).
enum SnapshotCodec {
    static let version1: UInt8 = 0x01
    static let version2: UInt8 = 0x02
    static let version3: UInt8 = 0x03

    static func encode(_ state: SchedulerState) throws -> [UInt8] {
        var rest = state
        rest.tasks = [:]
        rest.activeRuns = [:]
        let json = try StateLoader.snapshotEncoder.encode(rest)
        var out = BinaryRecordCodec.Writer()
        // About a task with its 20 runs each: a 10 MB snapshot is not copied ~20 times as it grows.
        out.bytes.reserveCapacity(json.count + state.tasks.count * 1024)
        out.byte(version3)
        out.unsigned(UInt64(json.count))
        out.bytes.append(contentsOf: json)
        out.unsigned(UInt64(state.activeRuns.count))
        for run in state.activeRuns.values.sorted(by: { $0.start.runID < $1.start.runID }) {
            let record = BinaryRecordCodec.encode(JournalEntry(at: run.startedAt, .runStarted(run.start))) ?? []
            out.unsigned(UInt64(record.count))
            out.bytes.append(contentsOf: record)
        }
        out.unsigned(UInt64(state.tasks.count))
        for (_, task) in state.tasks.sorted(by: { $0.key < $1.key }) { write(task, to: &out) }
        return out.bytes
    }

    /// Why `bytes` did not decode (`error`), in one line for a recovery report. A leading byte above today's versions but
    /// below any the JSON form or a random byte is likely to start with is taken as a newer keiji's version.
    static func unreadableReason(_ bytes: [UInt8], _ error: any Error) -> String {
        if let version = bytes.first, version > version3, version < 0x20 {
            return "the snapshot was written by a newer keiji (format \(version))"
        }
        let why = RefusedRecord.reason(error).split(whereSeparator: \.isNewline).joined(separator: " ")
        return "the snapshot " + (why.count > 200 ? why.prefix(200) + "…" : why)
    }

    static func decode(_ bytes: [UInt8]) throws -> SchedulerState {
        guard bytes.first != UInt8(ascii: "{") else { return try StateLoader.snapshotDecoder.decode(SchedulerState.self, from: Data(bytes)) }
        return try bytes.withUnsafeBytes { raw in
            let version = raw.first ?? 0
            guard version == version1 || version == version2 || version == version3 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown snapshot format version \(version)"))
            }
            var reader = BinaryRecordCodec.Reader(raw)
            reader.subject = "checkpoint snapshot"
            reader.offset = 1
            let json = try reader.utf8("state")
            var state = try StateLoader.snapshotDecoder.decode(SchedulerState.self, from: Data(json))
            if version != version1, !state.tasks.isEmpty || !state.activeRuns.isEmpty {
                throw reader.failure("tasks or active runs in the JSON of a version-\(version) snapshot")
            }
            for _ in 0..<(try reader.count("active runs")) {
                let entry = try BinaryRecordCodec.decode(try reader.utf8("active run"))
                guard case .runStarted(let start) = entry.event else { throw reader.failure("an active run is not a run.started") }
                state.activeRuns[start.runID] = ActiveRun(start: start, startedAt: entry.at)
            }
            if version == version1 {
                try readVersion1Runs(&reader, into: &state)
            } else {
                let count = try reader.count("tasks")
                state.tasks.reserveCapacity(count)
                for _ in 0..<count {
                    let task = try readTask(&reader, measured: version == version3)
                    guard state.tasks.updateValue(task, forKey: task.definition.name) == nil else {
                        throw reader.failure("task \(task.definition.name) twice")
                    }
                }
            }
            try reader.expectEnd()
            return state
        }
    }

    /// Version 1's remembered runs, by task name, for tasks its JSON holds.
    private static func readVersion1Runs(_ reader: inout BinaryRecordCodec.Reader, into state: inout SchedulerState) throws {
        for _ in 0..<(try reader.count("tasks")) {
            let name = try reader.taskName()
            let runs = try readRuns(&reader, measured: false)
            guard state.tasks[name] != nil else { throw reader.failure("runs of \(name), a task the snapshot does not hold") }
            state.tasks[name]?.recentRuns = runs
        }
    }

    // MARK: - Tasks (version 2)

    /// Flag bits of a task: its optional fields and its booleans.
    private enum TaskFlag {
        static let number: UInt8 = 1 << 0, refusal: UInt8 = 1 << 1, lastSlot: UInt8 = 1 << 2, lastStartedAt: UInt8 = 1 << 3
        static let lastFinishedAt: UInt8 = 1 << 4, lastOutcome: UInt8 = 1 << 5, isDisabled: UInt8 = 1 << 6, isError: UInt8 = 1 << 7
    }

    /// A task is stored under its definition's name (``Reducer`` keys every task so), written once.
    private static func write(_ task: TaskState, to out: inout BinaryRecordCodec.Writer) {
        var flags: UInt8 = 0
        if task.number != nil { flags |= TaskFlag.number }
        if task.refusal != nil { flags |= TaskFlag.refusal }
        if task.lastSlot != nil { flags |= TaskFlag.lastSlot }
        if task.lastStartedAt != nil { flags |= TaskFlag.lastStartedAt }
        if task.lastFinishedAt != nil { flags |= TaskFlag.lastFinishedAt }
        if task.lastOutcome != nil { flags |= TaskFlag.lastOutcome }
        if task.isDisabled { flags |= TaskFlag.isDisabled }
        if task.isError { flags |= TaskFlag.isError }
        out.byte(flags)
        out.string(task.taskID)
        if let number = task.number { out.signed(Int64(number)) }
        DefinitionCodec.write(task.definition, to: &out)
        out.signed(task.createdAt)
        out.signed(task.updatedAt)
        out.signed(task.anchor)
        out.signed(task.phaseMilliseconds)
        out.string(task.errorText)
        if let refusal = task.refusal { out.string(refusal) }
        if let lastSlot = task.lastSlot { out.signed(lastSlot) }
        out.signed(Int64(task.pendingTriggers))
        if let lastStartedAt = task.lastStartedAt { out.signed(lastStartedAt) }
        if let lastFinishedAt = task.lastFinishedAt { out.signed(lastFinishedAt) }
        if let lastOutcome = task.lastOutcome { out.byte(BinaryRecordCodec.Codes.code(of: lastOutcome)) }
        out.unsigned(UInt64(task.recentRuns.count))
        for run in task.recentRuns { write(run, to: &out) }
    }

    /// Reads the fields in the order ``write(_:to:)`` wrote them.
    /// `measured`: whether its runs may carry ``RunSummary/measuredMs`` (version 3).
    private static func readTask(_ reader: inout BinaryRecordCodec.Reader, measured: Bool) throws -> TaskState {
        let flags = try reader.byte("task flags")
        let taskID = try reader.string("taskID")
        let number = flags & TaskFlag.number != 0 ? try reader.int("number") : nil
        let definition = try DefinitionCodec.read(&reader)
        var task = TaskState(taskID: taskID, number: number, definition: definition, createdAt: try reader.signed("createdAt"),
                             updatedAt: try reader.signed("updatedAt"), anchor: try reader.signed("anchor"),
                             phaseMilliseconds: try reader.signed("phaseMilliseconds"))
        task.isDisabled = flags & TaskFlag.isDisabled != 0
        task.isError = flags & TaskFlag.isError != 0
        task.errorText = try reader.string("errorText")
        task.refusal = flags & TaskFlag.refusal != 0 ? try reader.string("refusal") : nil
        task.lastSlot = flags & TaskFlag.lastSlot != 0 ? try reader.signed("lastSlot") : nil
        task.pendingTriggers = try reader.int("pendingTriggers")
        task.lastStartedAt = flags & TaskFlag.lastStartedAt != 0 ? try reader.signed("lastStartedAt") : nil
        task.lastFinishedAt = flags & TaskFlag.lastFinishedAt != 0 ? try reader.signed("lastFinishedAt") : nil
        task.lastOutcome = flags & TaskFlag.lastOutcome != 0 ? try BinaryRecordCodec.Codes.outcome(try reader.byte("lastOutcome")) : nil
        task.recentRuns = try readRuns(&reader, measured: measured)
        return task
    }


    // MARK: - Runs (versions 1 and 2)

    private static func readRuns(_ reader: inout BinaryRecordCodec.Reader, measured: Bool) throws -> [RunSummary] {
        let count = try reader.count("runs")
        var runs: [RunSummary] = []
        runs.reserveCapacity(count)
        for _ in 0..<count { runs.append(try readRun(&reader, measured: measured)) }
        return runs
    }

    private enum Flag {
        static let slot: UInt8 = 1 << 0, startedAt: UInt8 = 1 << 1, exitCode: UInt8 = 1 << 2, signal: UInt8 = 1 << 3
        static let lateness: UInt8 = 1 << 4, message: UInt8 = 1 << 5, measured: UInt8 = 1 << 6
    }

    private static func write(_ run: RunSummary, to out: inout BinaryRecordCodec.Writer) {
        var flags: UInt8 = 0
        if run.slot != nil { flags |= Flag.slot }
        if run.startedAt != nil { flags |= Flag.startedAt }
        if run.exitCode != nil { flags |= Flag.exitCode }
        if run.signal != nil { flags |= Flag.signal }
        if run.latenessMs != nil { flags |= Flag.lateness }
        if run.message != nil { flags |= Flag.message }
        if run.measuredMs != nil { flags |= Flag.measured }
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
        if let measured = run.measuredMs { out.signed(measured) }
    }

    private static func readRun(_ reader: inout BinaryRecordCodec.Reader, measured allowsMeasured: Bool) throws -> RunSummary {
        let flags = try reader.byte("flags")
        try reader.expectFlags(flags, within: Flag.slot | Flag.startedAt | Flag.exitCode | Flag.signal | Flag.lateness | Flag.message
                               | (allowsMeasured ? Flag.measured : 0))
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
        let measured = flags & Flag.measured != 0 ? try reader.signed("measuredMs") : nil
        return RunSummary(runID: runID, slot: slot, startedAt: startedAt, finishedAt: finishedAt, outcome: outcome, exitCode: exitCode,
                          signal: signal, latenessMs: lateness, attempt: attempt, trigger: trigger, message: message, measuredMs: measured)
    }
}
