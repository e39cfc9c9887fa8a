import Foundation
import KeijiJournal

/// Rebuilds ``SchedulerState`` from a journal: the newest checkpoint whose snapshot this keiji reads (the journal sets
/// newer unreadable ones aside when that loses nothing), then every record after it
/// through ``Reducer``. The same path serves the scheduler at start and the CLI when it appends offline.
public enum StateLoader {
    public struct Loaded: Sendable {
        public var state: SchedulerState
        public var recordsReplayed: Int
        public var seconds: Double
        /// Of ``seconds``, the time spent decoding the checkpoint's snapshot (the rest is replaying records).
        public var snapshotSeconds: Double = 0
        /// LSNs and names of the tasks each replayed record touched, for bringing the query view up to date.
        public var touched: [(lsn: UInt64, task: TaskName?, isCommand: Bool)]
        /// Records replay could not apply, and checkpointed definitions today's rules refuse, in order.
        public var refused: [RefusedRecord] = []
        /// The LSN of each active run's `run.started`, when replay read it (a run missing here started before the
        /// checkpoint): recovery compares it with the LSNs a salvage lost, which may have held the run's end.
        public var activeRunStartLSNs: [String: UInt64] = [:]
        /// The LSN of each task's latest `task.saved`, when replay read it (a task missing here was saved before the
        /// checkpoint): recovery compares it with an interrupted run's start, as a definition's stamp (a `--disable`
        /// and `--enable` are no new definition).
        public var definitionSaveLSNs: [TaskName: UInt64] = [:]
        /// Tasks whose saved paths were another workspace's (``rebase(onto:)``): their rows are rewritten.
        public var rebased: Set<TaskName> = []
    }

    public static func load(from journal: Journal) throws -> Loaded {
        let started = DispatchTime.now().uptimeNanoseconds
        var state = SchedulerState()
        if let loaded = try journal.loadNewestReadableCheckpoint(readSnapshot) {
            state = loaded.state
            state.numberUnnumberedTasks()
        }
        let snapshotSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var refused = Reducer.refuseInvalidDefinitions(in: &state)
        var replayed = 0
        var touched: [(lsn: UInt64, task: TaskName?, isCommand: Bool)] = []
        var startLSNs: [String: UInt64] = [:]
        var saveLSNs: [TaskName: UInt64] = [:]
        try journal.contents.forEachRecord(from: state.lastLSN + 1) { lsn, bytes in
            replayed += 1
            // A record that cannot be applied never stops the replay: its task goes into error instead.
            let entry: JournalEntry
            do {
                entry = try JournalEntry.decode(bytes)
                if let problem = entry.timeOutOfRange { throw KeijiError(.invalidSchedule, problem) }
            } catch {
                let peek = RefusedRecord.peek(bytes)
                let record = Reducer.apply(refused: RefusedRecord(lsn: lsn, type: peek.type, task: peek.task, reason: RefusedRecord.reason(error)),
                                           at: peek.at, to: &state)
                refused.append(record)
                touched.append((lsn, record.task, false))
                return
            }
            Reducer.apply(entry, lsn: lsn, to: &state)
            switch entry.event {
            case .runStarted(let start): startLSNs[start.runID] = lsn
            case .runFinished(let end): startLSNs[end.runID] = nil
            case .runInterrupted(let runID, _, _, _): startLSNs[runID] = nil
            case .taskSaved(let definition, _): saveLSNs[definition.name] = lsn
            case .taskDeleted(let name): saveLSNs[name] = nil
            default: break
            }
            if case .taskSaved(let definition, _) = entry.event, let reason = state.tasks[definition.name]?.refusal {
                refused.append(RefusedRecord(lsn: lsn, type: entry.typeName, task: definition.name, reason: reason, action: "task set to error"))
            }
            touched.append((lsn, entry.taskName, entry.isCommand))
        }
        state.lastLSN = max(state.lastLSN, journal.lastLSN)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return Loaded(state: state, recordsReplayed: replayed, seconds: seconds, snapshotSeconds: snapshotSeconds, touched: touched, refused: refused,
                      activeRunStartLSNs: startLSNs.filter { state.activeRuns[$0.key] != nil }, definitionSaveLSNs: saveLSNs)
    }

    /// A checkpoint's snapshot, in either form ``SnapshotCodec`` reads.
    public static func decodeSnapshot(_ bytes: [UInt8]) throws -> SchedulerState {
        try SnapshotCodec.decode(bytes)
    }

    /// A checkpoint's state, or ``UnreadableSnapshot`` saying in one line why not: the journal then falls back to an
    /// older checkpoint when that loses nothing (a newer keiji's snapshot after a downgrade must not stop every start).
    static func readSnapshot(_ checkpoint: Checkpoint) throws -> SchedulerState {
        do {
            return try decodeSnapshot(checkpoint.snapshot)
        } catch {
            throw UnreadableSnapshot(reason: SnapshotCodec.unreadableReason(checkpoint.snapshot, error))
        }
    }

    public static func snapshot(_ state: SchedulerState) throws -> [UInt8] {
        try SnapshotCodec.encode(state)
    }

    static let snapshotEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    static let snapshotDecoder = JSONDecoder()
}

/// What bringing the query view up to a replayed state takes: decided at once (it reads only `applied_lsn`),
/// done when convenient. The scheduler does it on the view's writer after firing has begun, so a long catch-up
/// (every row of a thousand tasks) never delays the first firing after a restart: the view is derived and
/// may lag; the journal decides what runs.
public struct ViewCatchUp: Sendable {
    enum Work: Sendable, Equatable {
        case nothing
        case rebuild
        case rows(Set<TaskName>)
    }

    let work: Work
    /// Commands the view had not applied (for the recovery report).
    public let commandsReapplied: Int
    /// The LSN the view had applied when it claimed more than the journal holds: the journal lost acknowledged
    /// records (a deleted segment, a journal restored from an older copy), which the recovery report must say.
    public var viewWasAheadAt: UInt64? = nil

    public var isNeeded: Bool { work != .nothing }
    /// Every row written again from the state (the view lost writes it cannot name).
    public static let rebuild = ViewCatchUp(work: .rebuild, commandsReapplied: 0)
}

extension QueryView {
    /// Brings the view up to `loaded.state` at once. Returns how many commands that re-applied.
    @discardableResult
    public func catchUp(with loaded: StateLoader.Loaded, fresh: Bool) throws -> Int {
        let plan = try planCatchUp(with: loaded, fresh: fresh)
        try perform(plan, state: loaded.state)
        return plan.commandsReapplied
    }

    /// Writes what `plan` says from `state`, which may be newer than the state it was planned for (rows
    /// depend on the state alone, and the newer one is the truth).
    public func perform(_ plan: ViewCatchUp, state: SchedulerState, alsoTouched: Set<TaskName> = [], deleted: Set<TaskName> = []) throws {
        switch plan.work {
        case .nothing: if !alsoTouched.isEmpty || !deleted.isEmpty { try apply(touched: alsoTouched, state: state, deleted: deleted) }
        case .rebuild: try rebuild(from: state)
        case .rows(let names): try apply(touched: names.union(alsoTouched), state: state, deleted: deleted)
        }
    }

    /// A rebuild when the view is new (or claims more than the journal has, or is older than the replay
    /// window, or the journal's recovery lost acknowledged records, or its rows are of other ``QueryView/rowRules``), otherwise the rows of tasks touched by records
    /// after the view's `applied_lsn`, and those of every refused task: one refused from the checkpoint changed without a
    /// record, and one refused at a record the view had applied (an older keiji accepted it) shows it as it was then;
    /// and those of tasks rebased from another workspace.
    ///
    /// - Parameter journalLostRecords: recovery cut acknowledged records or set aside a checkpoint (`pointInTime`,
    ///   `salvage`, missing segments). The view may hold tasks and runs the state no longer has, at LSNs below its
    ///   `applied_lsn` too (a lost checkpoint, a salvage gap), which no LSN comparison sees: only a rebuild removes them.
    public func planCatchUp(with loaded: StateLoader.Loaded, fresh: Bool, journalLostRecords: Bool = false) throws -> ViewCatchUp {
        if fresh { return ViewCatchUp(work: .rebuild, commandsReapplied: loaded.touched.filter(\.isCommand).count) }
        let applied = try appliedLSN()
        if applied > loaded.state.lastLSN {
            // The view claims more than the journal has: rebuild rather than trust it, and say so.
            return ViewCatchUp(work: .rebuild, commandsReapplied: 0, viewWasAheadAt: applied)
        }
        let pending = loaded.touched.filter { $0.lsn > applied }
        let commands = pending.filter(\.isCommand).count
        let otherRules = try rowRulesDiffer()
        if journalLostRecords || applied < (loaded.touched.first?.lsn ?? loaded.state.lastLSN + 1) - 1 || otherRules {
            // Older than the replay window (the checkpoint covers it), over a loss, or of another keiji's rules: rewrite every row.
            return ViewCatchUp(work: .rebuild, commandsReapplied: commands)
        }
        var names = Set(pending.compactMap(\.task))
        names.formUnion(loaded.refused.compactMap(\.task))
        names.formUnion(loaded.rebased)
        if names.isEmpty && applied == loaded.state.lastLSN { return ViewCatchUp(work: .nothing, commandsReapplied: 0) }
        return ViewCatchUp(work: .rows(names), commandsReapplied: commands)
    }
}

extension JournalEntry {
    /// Why the record's time or slot is outside 1970-01-01…9999-12-31 (``InputRanges/recordMilliseconds``), or
    /// nil. Replay refuses such a record: every time computed from it then stays far inside `Int64`.
    var timeOutOfRange: String? {
        let range = InputRanges.recordMilliseconds
        guard range.contains(at) else { return "its time \(at) ms is outside 1970-01-01…9999-12-31" }
        let slot: Int64? = switch event {
        case .runStarted(let start): start.slot
        case .runMissed(let missed): missed.slot
        default: nil
        }
        if let slot, !(range.lowerBound / 1000...range.upperBound / 1000).contains(slot) {
            return "its slot \(slot) s is outside 1970-01-01…9999-12-31"
        }
        return nil
    }
}
