import KeijiJournal

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
        /// Exactly the LSNs of acknowledged records those repairs lost, as ranges (a salvage keeps records between
        /// them); nil when none, and in reports journaled before it existed.
        public var lostLSNs: [LSNRange]?
        public init() {}
    }

    public struct InterruptedRun: Codable, Sendable, Equatable {
        public var task: TaskName
        public var runID: String
        public var slot: Int64?
        public var startedAt: Int64
        /// `re-run`, `given up (interrupted N times); task in error`, or `not re-run (…)` with the reason:
        /// policy, task disabled, task in error, task deleted, or its end may be among the records salvage lost
        /// (``endMayBeLost``).
        public var action: String
        /// The interrupted run's attempt (a re-run gets the next one).
        public var attempt: Int?
        /// How many times runs of this slot have now been interrupted by scheduler restarts.
        public var interruptions: Int?
        /// Not interrupted by a crash as far as anyone knows: a salvage lost records after its start, which may hold its end.
        public var endMayBeLost: Bool { action.hasPrefix(Self.endMayBeLostAction) }
        public static let endMayBeLostAction = "not re-run (" + RunEnd.endLostWords

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

    /// A retry a stop or a crash dropped while it waited out its backoff, run again by this start.
    public struct ResumedRetry: Codable, Sendable, Equatable {
        public var task: TaskName
        /// The failed run's slot; nil for a manual run.
        public var slot: Int64?
        /// The attempt this start runs (the failed one's plus one).
        public var attempt: Int
        /// When it runs: the failed run's end plus its backoff, or at once when that has passed.
        public var dueAt: Int64
        public init(task: TaskName, slot: Int64?, attempt: Int, dueAt: Int64) {
            (self.task, self.slot, self.attempt, self.dueAt) = (task, slot, attempt, dueAt)
        }
    }

    /// What a cluster node (`DB_URL=postgres://…`) found in the cluster: commands to catch up on, and the slots
    /// it took over from nodes that died or stopped (at its start and since, while it runs).
    public struct Cluster: Codable, Sendable, Equatable {
        public var node: String
        /// Commands the other nodes published while this one was down, applied when it started.
        public var commandsCaughtUp = 0
        /// Slots taken over since this node started, in all.
        public var slotsTakenOver = 0
        /// The latest of them (at most ``RecoveryReport/Cluster/takenOverKept``), with what was done.
        public var takenOver: [TakenOverRun] = []
        public static let takenOverKept = 100

        /// Slots that passed while this node was down, up to the latest slot other nodes have claimed of each task:
        /// theirs, so neither missed nor caught up here. Most ran there; some the other nodes gave up by the catch-up
        /// policy (when the whole cluster stalled, the first node back records them missed) or skipped by the overlap
        /// one. The name is older than that wording, and kept so reports decode. Nil when none.
        public var slotsRunElsewhere: Int?

        /// This node's claims its last run left unfinished, and what its journal said of each (see
        /// ``OwnClaimRun``). Optional so reports journaled before it existed still decode; nil when none.
        public var ownClaims: [OwnClaimRun]?

        public init(node: String) { self.node = node }

        /// What this node caught up on and took over, in the words `keiji system --status` and the dashboard both use.
        public var summary: String {
            "node \(node); \(commandsCaughtUp) command(s) of other nodes caught up at start; "
                + "\(slotsTakenOver) slot(s) of lost or stopped nodes taken over since"
        }

        /// ``slotsRunElsewhere`` in words (nil when none).
        public var slotsRunElsewhereSummary: String? {
            slotsRunElsewhere.map { "\($0) slot(s) that passed while this node was down were \(Self.settledElsewhere): not missed, not caught up here" }
        }

        /// What became of the slots a node passes over (``slotsRunElsewhere``), in the words of the report's summary
        /// and of the scheduler's log after a stall.
        public static let settledElsewhere = "settled by other nodes (run there, or given up by their catch-up or overlap policy)"

        /// ``ownClaims`` in words (nil when none).
        public var ownClaimsSummary: String? {
            ownClaims.map { "\($0.count) left unfinished by the last run of this node, settled by its journal" }
        }

        public mutating func append(_ runs: [TakenOverRun]) {
            slotsTakenOver += runs.count
            takenOver.append(contentsOf: runs)
            if takenOver.count > Self.takenOverKept { takenOver.removeFirst(takenOver.count - Self.takenOverKept) }
        }
    }

    /// A slot another node held unfinished, taken over by this one.
    public struct TakenOverRun: Codable, Sendable, Equatable {
        public var task: String
        public var slot: Int64
        /// The node that held it.
        public var from: String
        /// When it was taken over (milliseconds since the epoch).
        public var at: Int64
        /// `run (it never began: <node> stopped)`, `re-run (<node> died during it)`, or `not re-run (…)` with the
        /// reason: policy, interrupted too often, task deleted, disabled or in error.
        public var action: String
        public init(task: String, slot: Int64, from: String, at: Int64, action: String) {
            (self.task, self.slot, self.from, self.at, self.action) = (task, slot, from, at, action)
        }
    }

    /// One of this node's own unfinished claims, resolved at its start from its journal: a slot whose run began
    /// here is marked finished (the mark was lost with the process); a slot that never began runs now.
    public struct OwnClaimRun: Codable, Sendable, Equatable {
        public var task: String
        public var slot: Int64
        /// `run (it never began: …)`, `marked finished (…)`, `not run (task …)`, or `decided again as a takeover from <node>`.
        public var action: String
        public init(task: String, slot: Int64, action: String) {
            (self.task, self.slot, self.action) = (task, slot, action)
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
    /// The LSN the query view had applied when the journal ended before it (``ViewCatchUp/viewWasAheadAt``).
    public var viewAheadOfJournalAt: UInt64?
    public var durationSeconds = 0.0
    /// Records replay could not apply and definitions today's rules refuse: each task named is in error
    /// and does not run. Optional so reports journaled before it existed still decode; nil when empty.
    public var refusedRecords: [RefusedRecord]?
    /// Retries resumed (see ``ResumedRetry``); nil when none, and in reports journaled before it existed.
    public var retriesResumed: [ResumedRetry]?
    /// On a cluster node; nil otherwise (and in reports journaled before clusters existed).
    public var cluster: Cluster?
    /// The journal's latest instant (``SchedulerState/latestRecordedInstant``) when it lies over a second ahead of
    /// ``startedAt``: the clock stepped back while the scheduler was stopped. Nil otherwise.
    public var journalAheadAt: Int64?

    public init(startedAt: Int64, previousShutdown: PreviousShutdown) {
        self.startedAt = startedAt
        self.previousShutdown = previousShutdown
    }
}

extension RecoveryReport {
    /// Said by the scheduler's start (in its report and log) when ``journalAheadAt`` is set.
    public static func journalAheadText(by milliseconds: Int64) -> String {
        "the clock is \(String(format: "%.0f", Double(milliseconds) / 1000)) s behind the journal's latest record (it stepped back while "
            + "the scheduler was stopped): no slot runs twice, so each task resumes at its next slot after the last one it ran"
    }

    /// Said by the scheduler's start (in its report and log) and refused by an offline command.
    public static func viewAheadText(view: UInt64, journal: UInt64) -> String {
        "the query view had applied LSN \(view) but the journal ends at LSN \(journal): acknowledged records "
            + "\(journal + 1)…\(view) are missing from the journal (a deleted segment, or a journal restored from an older copy)"
    }
}
