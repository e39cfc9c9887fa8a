/// Everything the journal says, folded: tasks, runs in progress, the last recovery. Built only by
/// ``Reducer``; snapshotted into journal checkpoints; the query view is written from it.
public struct SchedulerState: Codable, Sendable, Equatable {
    public var tasks: [TaskName: TaskState] = [:]
    /// Runs started and not yet finished or interrupted, by run id.
    public var activeRuns: [String: ActiveRun] = [:]
    /// Runs of tasks deleted while they went on (ending in their stop's grace), by run id; nil when none. Apart from
    /// `activeRuns`, which are runs of the tasks of their names: a task created again under the name is another task,
    /// and neither runs, nor has in its history, the deleted one's run. Kept so a crash meanwhile still finds its
    /// processes (``Reducer``; optional so snapshots from before decode).
    public var runsOfDeletedTasks: [String: ActiveRun]?
    public var lastLSN: UInt64 = 0
    /// A `scheduler.started` without a later `scheduler.stopped`: the previous scheduler crashed.
    public var schedulerRunning = false
    /// A scheduler has started on this journal before (so a start without a crash mark follows a clean stop).
    public var schedulerHasStarted = false
    public var lastRecovery: RecoveryReport?
    /// The last task number given out (the view's `ID`). Only grows, so a task deleted and created again gets
    /// a new number. Optional only so a snapshot written before numbers existed still decodes.
    public var lastTaskNumber: Int?

    public init() {}

    /// Numbers the tasks of a snapshot written before numbers existed, in creation order, so every task has
    /// one. Deterministic: the same snapshot gets the same numbers.
    public mutating func numberUnnumberedTasks() {
        let unnumbered = tasks.values.filter { $0.number == nil }.sorted { ($0.createdAt, $0.definition.name) < ($1.createdAt, $1.definition.name) }
        for task in unnumbered {
            let number = (lastTaskNumber ?? 0) + 1
            tasks[task.definition.name]?.number = number
            lastTaskNumber = number
        }
    }

    /// Runs remembered per task (here and in the view's `runs` table); older ones stay in the journal.
    public static let recentRunLimit = 20
}

/// One task as the journal knows it. Field names follow the seed's `task_models` where they exist.
///
/// A value type whose fields live out of line in one copy-on-write box: `SchedulerState.tasks` keeps its values
/// inline with a quarter to over half of its slots empty, so ~370 bytes of fields there cost 1.6–2.6× as much per
/// task as one pointer there and the fields in an allocation of their own. A copy shares the box until either
/// side changes a field (then the writer copies the fields first), so the checkpoint's and the view writer's
/// copies of the state stay cheap.
public struct TaskState: Codable, Sendable, Equatable, CustomReflectable {
    private var storage: Storage

    init(taskID: String, number: Int? = nil, definition: TaskDefinition, createdAt: Int64, updatedAt: Int64, anchor: Int64,
         phaseMilliseconds: Int64 = 0) {
        storage = Storage(Fields(taskID: taskID, number: number, definition: definition, createdAt: createdAt, updatedAt: updatedAt,
                                 anchor: anchor, phaseMilliseconds: phaseMilliseconds))
    }

    public var taskID: String { get { storage.fields.taskID } _modify { yield &fields.taskID } }
    /// The seed's `ID`: given once when the task is first saved, kept for the task's life (restarts, rebuilds
    /// of the view, saves of a new definition). `nil` only in a snapshot from before numbers existed.
    public var number: Int? { get { storage.fields.number } _modify { yield &fields.number } }
    public var definition: TaskDefinition { get { storage.fields.definition } _modify { yield &fields.definition } }
    public var createdAt: Int64 { get { storage.fields.createdAt } _modify { yield &fields.createdAt } }
    public var updatedAt: Int64 { get { storage.fields.updatedAt } _modify { yield &fields.updatedAt } }
    /// Interval schedules count from here (seconds): when the task was saved with this schedule or enabled.
    public var anchor: Int64 { get { storage.fields.anchor } _modify { yield &fields.anchor } }
    /// Interval schedules fire this many milliseconds into their slot's second: the sub-second moment the
    /// anchor was set, as the seed's per-task ticker did. Tasks saved at different moments do not all wake
    /// at the same instant. Calendar schedules (weekly, cron, once) fire on the second.
    public var phaseMilliseconds: Int64 { get { storage.fields.phaseMilliseconds } _modify { yield &fields.phaseMilliseconds } }
    public var isDisabled: Bool { get { storage.fields.isDisabled } _modify { yield &fields.isDisabled } }
    public var isError: Bool { get { storage.fields.isError } _modify { yield &fields.isError } }
    public var errorText: String { get { storage.fields.errorText } _modify { yield &fields.errorText } }
    /// Why today's rules refuse this task's definition (see ``RefusedRecord``); nil when it is valid. A refused
    /// task stays in error, whatever `task.resolved` says, until a valid definition is saved.
    public var refusal: String? { get { storage.fields.refusal } _modify { yield &fields.refusal } }
    /// The last slot fired or recorded as missed (seconds): catch-up and the next slot count from here.
    public var lastSlot: Int64? { get { storage.fields.lastSlot } _modify { yield &fields.lastSlot } }
    /// Manual triggers journaled and not yet started (the seed's IsQueued).
    public var pendingTriggers: Int { get { storage.fields.pendingTriggers } _modify { yield &fields.pendingTriggers } }
    public var lastStartedAt: Int64? { get { storage.fields.lastStartedAt } _modify { yield &fields.lastStartedAt } }
    public var lastFinishedAt: Int64? { get { storage.fields.lastFinishedAt } _modify { yield &fields.lastFinishedAt } }
    public var lastOutcome: RunOutcome? { get { storage.fields.lastOutcome } _modify { yield &fields.lastOutcome } }
    /// The newest runs, oldest first, at most ``SchedulerState/recentRunLimit``.
    public var recentRuns: [RunSummary] { get { storage.fields.recentRuns } _modify { yield &fields.recentRuns } }

    public var isQueued: Bool { pendingTriggers > 0 }

    /// When the run for `slot` should start, in milliseconds: the slot, its jitter, and for interval
    /// schedules the task's sub-second phase.
    public func fireTimeMilliseconds(slot: Int64, calculator: ScheduleCalculator) -> Int64 {
        // Saturating: a slot from a refused definition or a far-off record cannot trap the loop.
        var ms = TimeArithmetic.product(TimeArithmetic.sum(slot, calculator.jitter(taskID: taskID, slot: slot)), 1000)
        if case .every = definition.schedule.schedule { ms = TimeArithmetic.sum(ms, phaseMilliseconds) }
        return ms
    }

    // The same JSON as when the fields were the struct's own (checkpoints and the snapshot golden bytes).
    public init(from decoder: any Decoder) throws { storage = Storage(try Fields(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try storage.fields.encode(to: encoder) }

    public static func == (a: TaskState, b: TaskState) -> Bool { a.storage === b.storage || a.storage.fields == b.storage.fields }

    /// Test failures, `print` and `dump` show the fields, not the box.
    public var customMirror: Mirror { Mirror(self, children: Mirror(reflecting: storage.fields).children) }

    /// The fields for writing: copied into a box of this value's own first if a copy shares the box.
    private var fields: Fields {
        get { storage.fields }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            yield &storage.fields
        }
    }

    /// Mutable only through ``fields``, that is while this value holds the only reference: a box reachable from
    /// another thread (a copy of the state handed to the view writer or the checkpoint) is never written.
    private final class Storage: @unchecked Sendable {
        var fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    /// The stored fields (documented on the accessors above). Each optional sits before a one-byte field that
    /// fills its padding.
    private struct Fields: Codable, Equatable {
        var taskID: String
        var definition: TaskDefinition
        var createdAt: Int64
        var updatedAt: Int64
        var anchor: Int64
        var phaseMilliseconds: Int64 = 0
        var pendingTriggers = 0
        var errorText = ""
        var refusal: String?
        var recentRuns: [RunSummary] = []
        var number: Int?
        var isDisabled = false
        var lastSlot: Int64?
        var isError = false
        var lastStartedAt: Int64?
        var lastOutcome: RunOutcome?
        var lastFinishedAt: Int64?

        init(taskID: String, number: Int?, definition: TaskDefinition, createdAt: Int64, updatedAt: Int64, anchor: Int64,
             phaseMilliseconds: Int64) {
            self.taskID = taskID
            self.number = number
            self.definition = definition
            self.createdAt = createdAt
            self.updatedAt = updatedAt
            self.anchor = anchor
            self.phaseMilliseconds = phaseMilliseconds
        }
    }
}

public struct ActiveRun: Codable, Sendable, Equatable {
    public var start: RunStart
    public var startedAt: Int64
}

/// A finished (or interrupted, or missed) run, for `runs` and `--status`.
public struct RunSummary: Codable, Sendable, Equatable {
    public var runID: String
    public var slot: Int64?
    public var startedAt: Int64?
    public var finishedAt: Int64
    public var outcome: String
    public var exitCode: Int32?
    public var signal: Int32?
    public var latenessMs: Int64?
    public var attempt: Int
    public var trigger: String
    public var message: String?
    /// How long its process ran as the executor measured it on the monotonic clock (its `run.finished`'s
    /// `durationMs`): its wall-clock start and end are apart by any step of the clock between them. Nil for other
    /// entries, and for runs remembered by a keiji that did not keep it.
    public var measuredMs: Int64? = nil
}

extension TaskName: CodingKeyRepresentable {
    public var codingKey: any CodingKey { NameKey(stringValue: rawValue) }
    public init?<T: CodingKey>(codingKey: T) { try? self.init(codingKey.stringValue) }

    private struct NameKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
