/// Everything the journal says, folded: tasks, runs in progress, the last recovery. Built only by
/// ``Reducer``; snapshotted into journal checkpoints; the SQLite view is written from it.
public struct SchedulerState: Codable, Sendable, Equatable {
    public var tasks: [TaskName: TaskState] = [:]
    /// Runs started and not yet finished or interrupted, by run id.
    public var activeRuns: [String: ActiveRun] = [:]
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
public struct TaskState: Codable, Sendable, Equatable {
    public var taskID: String
    /// The seed's `ID`: given once when the task is first saved, kept for the task's life (restarts, rebuilds
    /// of the view, saves of a new definition). `nil` only in a snapshot from before numbers existed.
    public var number: Int?
    public var definition: TaskDefinition
    public var createdAt: Int64
    public var updatedAt: Int64
    /// Interval schedules count from here (seconds): when the task was saved with this schedule or enabled.
    public var anchor: Int64
    /// Interval schedules fire this many milliseconds into their slot's second: the sub-second moment the
    /// anchor was set, as the seed's per-task ticker did. Tasks saved at different moments do not all wake
    /// at the same instant. Calendar schedules (weekly, cron, once) fire on the second.
    public var phaseMilliseconds: Int64 = 0
    public var isDisabled = false
    public var isError = false
    public var errorText = ""
    /// Why today's rules refuse this task's definition (see ``RefusedRecord``); nil when it is valid. A refused
    /// task stays in error, whatever `task.resolved` says, until a valid definition is saved.
    public var refusal: String?
    /// The last slot fired or recorded as missed (seconds): catch-up and the next slot count from here.
    public var lastSlot: Int64?
    /// Manual triggers journaled and not yet started (the seed's IsQueued).
    public var pendingTriggers = 0
    public var lastStartedAt: Int64?
    public var lastFinishedAt: Int64?
    public var lastOutcome: RunOutcome?
    /// The newest runs, oldest first, at most ``SchedulerState/recentRunLimit``.
    public var recentRuns: [RunSummary] = []

    public var isQueued: Bool { pendingTriggers > 0 }

    /// When the run for `slot` should start, in milliseconds: the slot, its jitter, and for interval
    /// schedules the task's sub-second phase.
    public func fireTimeMilliseconds(slot: Int64, calculator: ScheduleCalculator) -> Int64 {
        // Saturating: a slot from a refused definition or a far-off record cannot trap the loop.
        var ms = TimeArithmetic.product(TimeArithmetic.sum(slot, calculator.jitter(taskID: taskID, slot: slot)), 1000)
        if case .every = definition.schedule.schedule { ms = TimeArithmetic.sum(ms, phaseMilliseconds) }
        return ms
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
