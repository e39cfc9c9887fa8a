/// What the scheduler found and did when it started: journaled as `recovery.completed` and shown by
/// `keiji system --status`. Nothing recovery decides is silent.
public struct RecoveryReport: Codable, Sendable, Equatable {
    public enum PreviousShutdown: String, Codable, Sendable { case clean, crash, firstStart }

    public struct Journal: Codable, Sendable, Equatable {
        public var recordsReplayed = 0
        public var replaySeconds = 0.0
        public var checkpointLSN: UInt64?
        public var lastLSN: UInt64 = 0
        public var bytesRepaired = 0
        /// One line per journal repair (torn tail cut, quarantines…).
        public var repairs: [String] = []
        public init() {}
    }

    public struct InterruptedRun: Codable, Sendable, Equatable {
        public var task: TaskName
        public var runID: String
        public var slot: Int64?
        public var startedAt: Int64
        /// `re-run`, `given up (interrupted N times); task in error`, or `not re-run (…)` with the reason:
        /// policy, task disabled, task in error, task deleted.
        public var action: String
        /// The interrupted run's attempt (a re-run gets the next one).
        public var attempt: Int?
        /// How many times runs of this slot have now been interrupted by scheduler restarts.
        public var interruptions: Int?
        public init(task: TaskName, runID: String, slot: Int64?, startedAt: Int64, action: String, attempt: Int? = nil, interruptions: Int? = nil) {
            (self.task, self.runID, self.slot, self.startedAt, self.action) = (task, runID, slot, startedAt, action)
            (self.attempt, self.interruptions) = (attempt, interruptions)
        }
    }

    public struct MissedSlots: Codable, Sendable, Equatable {
        public var task: TaskName
        public var policy: CatchUpPolicy
        public var count: Int
        public var firstSlot: Int64
        public var lastSlot: Int64
        /// How many runs recovery started for them.
        public var runs: Int
        public init(task: TaskName, policy: CatchUpPolicy, count: Int, firstSlot: Int64, lastSlot: Int64, runs: Int) {
            (self.task, self.policy, self.count, self.firstSlot, self.lastSlot, self.runs) = (task, policy, count, firstSlot, lastSlot, runs)
        }
    }

    public var startedAt: Int64
    public var previousShutdown: PreviousShutdown
    public var journal = Journal()
    public var interruptedRuns: [InterruptedRun] = []
    public var missedSlots: [MissedSlots] = []
    /// Commands journaled but not yet in the query view, applied now.
    public var commandsReapplied = 0
    public var viewRebuilt = false
    public var durationSeconds = 0.0
    /// Records replay could not apply and definitions today's rules refuse: each task named is in error
    /// and does not run. Optional so reports journaled before it existed still decode; nil when empty.
    public var refusedRecords: [RefusedRecord]?

    public init(startedAt: Int64, previousShutdown: PreviousShutdown) {
        self.startedAt = startedAt
        self.previousShutdown = previousShutdown
    }
}
