import Synchronization
import Foundation
import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The scheduler: holds the journal, folds every record into ``SchedulerState`` through the one
/// ``Reducer``, fires every enabled task from one timer heap served by one loop, and keeps the query view up
/// to date.
///
/// Write-ahead everywhere: a record is durable before its effect (`run.started` before the spawn, a command
/// before its acknowledgement). State is applied strictly in LSN order once durable, so it is always exactly
/// what a replay of the journal would give.
public actor SchedulerEngine {
    enum Phase { case created, running, stopping, stopped, failed }

    let configuration: SchedulerConfiguration
    /// Where time comes from (``SchedulerConfiguration/clock``).
    nonisolated let clock: any SchedulerClock
    /// `TIME_ZONE`, resolved once.
    let timeZone: TimeZone
    /// Each task's run environment: a defined part of the scheduler's own, read once, plus the task's `.env` (re-read when it changes).
    let environments: TaskEnvironments
    /// Each task's log, kept open between runs.
    let taskLogs = TaskLogDescriptors()
    /// Where runs leave a thrown message (``RunErrorFiles``), prepared by ``start()``.
    var runErrorFiles: RunErrorFiles?
    var phase = Phase.created
    /// Why the journal failed, once it has (``failStop(_:)``): commands are answered with it, and the stop logs it.
    var journalFailure: String?
    var journal: Journal!
    var viewWriter: ViewWriter?
    /// This node's link to the cluster's claims (`DB_URL=postgres://…`); nil on SQLite.
    var cluster: ClusterLink?
    var heartbeatTask: Task<Void, Never>?
    /// The cluster link's upkeep after each heartbeat interval: old claims dropped, takeovers, unclaimed slots.
    var upkeepTask: Task<Void, Never>?
    /// The last command of the cluster applied here (``pullCommands()``), and the latest pulls' results, by `seq`.
    var appliedCommandSeq: Int64 = 0
    var recentCommandResults: [Int64: ClusterCommandResult] = [:]
    /// While a pull applies cluster commands: the tasks to arm once it is done (nil otherwise; the view is
    /// flushed then too).
    var deferredArming: Set<TaskName>?
    /// Commands pulled from the cluster and applied since this node started.
    var clusterCommandsApplied = 0
    var commandPull: Task<Void, Never>?
    /// Tasks a run of this node put in error whose `task.errored` the database has not taken yet: published before
    /// each pull while the task is still in error here (the others would otherwise go on firing it).
    var unpublishedErrors: [TaskName: JournalEntry] = [:]
    var errorPublishFailuresNoted: Set<TaskName> = []
    var commandPollTask: Task<Void, Never>?
    /// Slots this node decided to fire while the database could not be reached, by task (at most
    /// ``unclaimedSlotLimit`` in all, with ``unclaimedOwedRuns``): claimed again by their catch-up policy when it
    /// answers.
    var unclaimedSlots: [TaskName: [Int64]] = [:]
    var unclaimedSlotCount = 0
    /// Those of ``unclaimedSlots`` whose firing did not claim afresh (the runs of a stopped node's slots taken over,
    /// above all): claimed again as that firing would have been (see ``Firing/claimsAfresh``).
    var unclaimedSlotsNotAfresh: Set<ClaimedSlot> = []
    /// Retries and re-runs of interrupted runs whose claims met the outage: runs owed to slots that began, not
    /// missed slots, so they are claimed again as they were when the database answers, whatever the catch-up policy.
    var unclaimedOwedRuns: [RecoveryRun] = []
    /// Slots the restart took over whose tasks it did not know yet, or knew disabled or in error (see
    /// ``decideTakeoversAfterPull()``).
    var takeoversDecidedAfterPull: [TakenOverSlot] = []
    /// The live nodes as of the last heartbeat: which slots this node claims at once (``SlotPreference``).
    var slotPreference = SlotPreference(nodes: [], me: "")
    /// Slots this node decided to fire that another node held (or that could not be claimed): in `--status`.
    public internal(set) var slotsHeldElsewhere = 0
    /// Slots preferred for other nodes, waiting out the fallback delay, and whether ``claimFallbacks()`` is
    /// serving them (it claims them together).
    var fallbackClaims: [FallbackClaim] = []
    var fallbackClaimsServed = false
    /// The view's flushes and the checkpoint's encoding run here, off the cooperative pool the firing path uses.
    let background = BackgroundThread(name: "keiji-background", yieldsToFiring: true)
    let log: LogFile
    /// When the view's updates began failing (nil while they succeed): said once in the log, and again when it catches up.
    /// Said at every retry, a full disk under the view wrote a line every 200 ms.
    var viewBehindSince: Int64?
    /// Whether `view.behind` (``ViewLag``) is written for this spell of failures: tried again at each failing flush till it is.
    var viewLagRecorded = false

    /// The durable, applied state.
    public private(set) var state = SchedulerState()
    /// Records durable but not yet applied because an earlier LSN's continuation has not run yet.
    private var unapplied: [UInt64: JournalEntry] = [:]
    private var appliedThrough: UInt64 = 0
    /// `task.disabled` and `task.deleted` records handed to the journal and not yet applied: while there are any, a
    /// tick's firings made durable meanwhile wait until the records before theirs are applied (``journalAndSpawn``).
    private(set) var stoppingCommandsUnapplied = 0
    private var applyWaiters: [(UInt64, CheckedContinuation<Void, Never>)] = []
    /// Runs that ended, waiting for ``flushEndedRuns()`` to journal their `run.finished` (see ``end(_:)``).
    var endedRuns: [EndedRun] = []
    /// When ``flushEndedRuns()`` last took a batch, and the wait for the next (``SchedulerConfiguration/endedRunsInterval``).
    var lastEndedRunsFlush: ContinuousClock.Instant?
    var endedRunsWait: Task<Void, Never>?
    /// Callers of ``waitUntilNoRuns()``.
    private var noRunsWaiters: [CheckedContinuation<Void, Never>] = []

    /// Every armed firing, in one heap served by one loop (`runTimers`); a task costs an entry, not a `Task`.
    var timers = TimerHeap()
    /// The generation of each task's live heap entry; an entry with another generation is stale.
    var armed: [TaskName: UInt32] = [:]
    var lastGeneration: UInt32 = 0
    /// Heap entries left behind by re-arms, dropped in bulk once they outnumber the live ones.
    var staleTimers = 0
    var timerLoop: Task<Void, Never>?
    /// The timer loop's current sleep and its deadline: arming an earlier firing cuts the sleep short, and so does
    /// a run awaiting an earlier slot, unless the sleep is a busy tick's (the tick begins it, as it takes firings).
    var timerSleep: Task<Void, Never>?
    var timerSleepsUntil = Int64.max
    var timerSleepIsBusyTick = false
    /// Runs whose `run.started` became durable before their slot (the loop takes firings within the firing lead):
    /// the timer loop begins each once its slot has come. In slot order (``awaitSlots(_:)``).
    var startsAwaitingSlot: [PreparedFirings.StartedRun] = []
    /// Firings of overlap-`skip` tasks taken within the lead while a run of the task was registered: whether such a
    /// slot overlaps is decided at its moment (the run may end before then), so the loop takes them again then.
    var firingsAwaitingMoment: [TimerEntry] = []
    /// Whether runs taken within the firing lead go to the spawn server at once, dated at their slots (it holds
    /// each until then), rather than wait in ``startsAwaitingSlot`` for the timer loop: with the wall clock, which the
    /// server reads too, and processes to spawn. Tests that step a clock of their own keep the loop's way.
    let datesStarts: Bool
    /// Dated starts sent and not answered (at most ``SchedulerConfiguration/heldStartsLimit``).
    var heldStarts = 0
    /// One `Task` per run in progress.
    var runs: [String: LiveRun] = [:]
    var runIDs = RunIDGenerator()
    /// Runs in progress per task (kept beside `runs` so the hot path never scans it).
    var activeRunCounts: [TaskName: Int] = [:]
    /// Of those, when the process of each that has ended did (its end not yet durable), per task: what
    /// ``hasRunsGoing(_:at:)`` looks at, again without scanning `runs`.
    var endsOfCountedRuns: [TaskName: [Int64]] = [:]
    /// The last slot the timer decided to fire per task: its cursor, ahead of the (later applied) records.
    var firedSlots: [TaskName: Int64] = [:]
    /// Manual runs taken whose `run.started` is not applied yet, per task: the task's `pendingTriggers` still counts
    /// their triggers, and ``arm(_:)`` must not take them again (parallel `--run`s started more runs than were queued).
    var manualStartsUnapplied: [TaskName: Int] = [:]
    /// The LSN of each task's latest `task.saved` applied here (``DefinitionStamp``).
    var definitionSaves: [TaskName: UInt64] = [:]
    /// Tasks whose queued catch-up runs are still going (``queueCatchUps(_:)``): their slots are not armed.
    var catchingUp: Set<TaskName> = []
    /// In a cluster, tasks found stalled whose cursors have been moved up to the cluster's latest claims
    /// (``settleStallInCluster(_:)``): at their next firing the stall follows the catch-up rule here.
    var stallsLookedUp: Set<TaskName> = []

    var dirtyTasks: Set<TaskName> = []
    /// Of `dirtyTasks`, those whose definition was saved (their whole view row is rewritten; the others only
    /// their run columns).
    var redefinedTasks: Set<TaskName> = []
    var newRuns: [(TaskName, RunSummary)] = []
    /// Tasks deleted since the last flush (some perhaps created again since): the view drops their rows first.
    var deletedTasks: Set<TaskName> = []
    var viewFlushTask: Task<Void, Never>?
    /// Looks for a step of the wall clock back once a second (``ClockStepWatch``).
    var clockWatchTask: Task<Void, Never>?
    /// Periodic flushes of the view so far (the benchmark reports how often the view was written).
    public private(set) var viewFlushes = 0
    var recordsSinceCheckpoint = 0
    var lastCheckpoint = ContinuousClock.now
    var lateness = LatenessSamples()
    /// `keiji_runs_finished_total`'s series, one lookup per task and outcome (with ``SchedulerConfiguration/metrics``).
    var runSeries = RunSeries()
    public internal(set) var recoveryReport: RecoveryReport?
    /// Runs recovery decided on, started once the engine runs.
    var pendingRecoveryRuns: [RecoveryRun] = []
    /// Retries recovery resumed (``owedRetries(rerunning:)``), each started at its due time once the engine runs.
    var retriesAfterRecovery: [(run: RecoveryRun, dueAtMs: Int64)] = []

    struct LiveRun {
        var task: TaskName
        var handle: RunHandle
        /// The run's task, once `run.started` is durable (nil while it is being journaled).
        var work: Task<Void, Never>?
        /// Counted in ``activeRunCounts`` (what overlap looks at); not while it waits for a fallback claim.
        var counted = true
        /// When its slot's claim was won (engine clock, ms; at registration for a run with no claim to wait for);
        /// nil while, in a cluster, the claim is not answered yet (see ``prepare(_:missed:)``).
        var claimedAtMs: Int64?
        /// When its process ended (engine clock, ms); nil while it goes on. Its end may not be durable yet.
        var endedAtMs: Int64?
        /// The definition it runs (``DefinitionStamp``): its failure is retried only while that is still its task's.
        var stamp: DefinitionStamp?
        /// Its definition's `--grace`: a stop's SIGKILL follows its SIGTERM after this long, whatever the task (deleted,
        /// or redefined) says since.
        var graceSeconds: Double = 5
        /// Its task was deleted during it: it ends in its stop's grace, counted as no run of a task created again
        /// under the name (``SchedulerState/runsOfDeletedTasks``).
        var detached = false

        /// Whether it was going on at `dueMs`: its process had not ended by then.
        func wasGoing(at dueMs: Int64) -> Bool { endedAtMs.map { $0 > dueMs } ?? true }
    }

    public init(configuration: SchedulerConfiguration) {
        self.configuration = configuration
        environments = TaskEnvironments(base: TaskEnvironments.inherited(from: configuration.environment))
        timeZone = configuration.settings.timeZone
        clock = configuration.clock
        datesStarts = configuration.spawnProcesses && configuration.clock is WallClock
        log = LogFile(service: "scheduler", workspace: configuration.workspace, settings: configuration.settings)
    }

    deinit { background.stop() }

    // MARK: - Lifecycle

    /// Opens the journal, recovers (see ``RecoveryReport``), and starts every enabled task.
    /// - Throws: if the journal is locked or corrupted (strict mode), or the workspace is unusable.
    @discardableResult
    public func start() async throws -> RecoveryReport {
        guard phase == .created else { throw KeijiError(.conflict, "the scheduler was already started") }
        let workspace = configuration.workspace
        try workspace.createSystemDirectories { note($0) }
        journal = try Journal.open(directory: workspace.journalDirectory, options: configuration.journalOptions)
        let report: RecoveryReport
        do {
            // Only once the journal lock says this is the one scheduler. A roll that fails (a full disk) is no reason to refuse.
            do { try log.rotateIfNeeded(movingStandardError: true) } catch { note("its log was not rotated: \(error)") }
            if configuration.spawnProcesses { runErrorFiles = RunErrorFiles(preparing: workspace.runErrorDirectory) }
            report = try await recover()
        } catch {
            // A refused start (a database that fails, a damaged journal in strict mode) lets go of the journal's lock,
            // and the engine cannot be started again.
            phase = .stopped
            try? await journal.close()
            throw error
        }
        configuration.metrics?.recovered(report)
        // Definitions and changes made on other nodes since this one last ran, before anything is armed; and
        // this node's own tasks from before it joined, to the others.
        await publishTasksMadeBeforeJoining()
        await pullCommands()
        if cluster != nil {
            recoveryReport?.cluster?.commandsCaughtUp = clusterCommandsApplied
            saveRecoveryReport()
            await decideTakeoversAfterPull()
            await queueErrorsNotInTheLog()
        }
        phase = .running
        await startRecoveryRuns()
        timers.reserveCapacity(state.tasks.count)
        for name in state.tasks.keys.sorted() { arm(name) }
        // The engine's actor takes its jobs by priority: the timer loop (and the firings it commits) go ahead of
        // runs that end and of view flushes queued before them, so a burst of ends does not make a slot late.
        timerLoop = Task(priority: .high) { [weak self] in await self?.runTimers() }
        viewFlushTask = Task(priority: .utility) { [weak self] in await self?.flushViewPeriodically() }
        let watching = ClockStepWatch(wall: clock.nowMilliseconds())  // from now: a step while the task waits to begin counts
        clockWatchTask = Task(priority: .utility) { [weak self, clock] in
            var watch = watching
            while (try? await Task.sleep(for: .seconds(1))) != nil {
                if let back = watch.steppedBack(wall: clock.nowMilliseconds()) { await self?.noteClockSteppedBack(byMilliseconds: back) }
            }
        }
        if cluster != nil { commandPollTask = Task { [weak self] in await self?.pollCommandsPeriodically() } }
        if let cluster {
            // Two loops: the beat never waits behind the link's statements (see ``ClusterHeartbeat``). Each ends
            // when cancelled, never with one more step: a beat after `leave()` marked the stopped node alive.
            heartbeatTask = Task { [weak self] in
                while (try? await Task.sleep(for: Self.heartbeatInterval)) != nil {
                    if let live = await cluster.heartbeat.beat() { await self?.setLiveNodes(live) }
                }
            }
            upkeepTask = Task { [weak self] in
                while (try? await Task.sleep(for: Self.heartbeatInterval)) != nil {
                    if await cluster.upkeep() {
                        // Takeovers first: their finish marks are sent before the catch-ups below claim anything.
                        await self?.takeOverAbandonedSlots()
                        await self?.retryUnclaimedSlots()
                    }
                }
            }
        }
        note("scheduler started (pid \(getpid())): \(state.tasks.count) tasks, recovery took \(String(format: "%.3f", report.durationSeconds)) s")
        return report
    }

    /// Graceful stop: no new runs, running ones get `shutdownGrace` to finish, the rest are killed; every
    /// outcome is journaled, then a checkpoint and a clean-shutdown mark.
    public func stop() async {
        guard phase == .running || phase == .failed else { return }
        let failed = phase == .failed
        phase = .stopping
        endedRunsWait?.cancel()  // the ends gathered so far are journaled now, and later ones at once
        note("stopping: \(runs.count) run\(runs.count == 1 ? "" : "s") in progress")
        stopTimers()
        await endRunsAwaitingSlot()
        if !runs.isEmpty {
            let deadline = ContinuousClock.now + configuration.shutdownGrace
            while !runs.isEmpty, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            for run in runs.values {
                run.handle.terminate(reason: .stopped, grace: 2, because: "the scheduler stopped, and the run had not ended within \(configuration.shutdownGrace)")
            }
            // A firing waiting for its claim's answer from a database that hangs never ends: bounded.
            let ended = await Self.finishes(by: .now + Self.stopRunsBound) { await self.awaitRunsEnded() }
            if !ended { note("stopping: \(runs.count) runs had not ended \(Self.stopRunsBound) after their termination (waiting for the database?); stopping without them") }
        }
        // The database's steps are bounded together (``SchedulerConfiguration/stopDatabaseBound``): a server that hangs
        // (SIGSTOP, a network that drops packets) answers no statement, and the stop waited on it until `keiji system
        // --stop` killed it.
        let databaseDeadline = ContinuousClock.now + configuration.stopDatabaseBound
        var answered = true
        // Each loop ends at its next wait; one still in a step finishes it first (a heartbeat after `leave()`
        // marked this node alive again, a command pulled after the journal closed was lost here).
        answered = await Self.finishes(by: databaseDeadline) { await self.endLoops() }
        if failed {
            // Not marked stopped: a stopped node's claims are taken over as runs that never began, and run at once.
            // The runs whose ends the failed journal lost began; their claims (unfinished) are taken over as a
            // dead node's once the heartbeat is old (re-run as each task's policy says), or settled by the
            // restart. The marks of the ends made durable before the failure go.
            if answered, let cluster { answered = await Self.finishes(by: databaseDeadline) { await cluster.leave(markingStopped: false) } }
        } else {
            if answered, let cluster { answered = await Self.finishes(by: databaseDeadline) { await cluster.leave() } }
            if state.activeRuns.isEmpty, state.runsOfDeletedTasks == nil { _ = try? await record(.schedulerStopped(clean: true)) }  // runs stuck on a claim never began
            await waitUntilApplied(journal.lastLSN)
            if answered { answered = await Self.finishes(by: databaseDeadline) { await self.flushAndCloseView() } }
            // Encoded on this actor: a view write the database never answers holds the background thread, and the
            // checkpoint queued behind it there until `keiji system --stop` killed the scheduler.
            try? await writeCheckpoint(encodingOnBackground: false)
        }
        if !answered {
            note("stopping: the database did not answer within \(configuration.stopDatabaseBound)"
                 + (cluster == nil ? "; the view catches up from the journal at the next start"
                                   : "; this node is not marked stopped (the other nodes take its unfinished claims over as a dead node's "
                                     + "after \(ClusterDatabase.heartbeatTimeoutSeconds) s), and the view catches up at the next start"))
        }
        try? await journal.close()
        phase = .stopped
        // Not "cleanly" after a failed journal: `keiji system --status` reads this line to say why the scheduler is down.
        note(journalFailure.map(JournalFailureStop.logLine) ?? "scheduler stopped cleanly")
    }

    /// How long a stop waits for runs past their termination (the database's steps have
    /// ``SchedulerConfiguration/stopDatabaseBound``): under `keiji system --stop`'s 30 s with the shutdown grace's 10.
    static let stopRunsBound: Duration = .seconds(3)

    private func awaitRunsEnded() async {
        for run in runs.values { await run.work?.value }
        await waitUntilNoRuns()  // every run.finished durable before the clean-stop mark
    }

    private func flushAndCloseView() async {
        await flushView()
        await viewWriter?.close()
    }

    private func endLoops() async {
        for loop in [viewFlushTask, clockWatchTask, heartbeatTask, upkeepTask, commandPollTask].compactMap({ $0 }) {
            loop.cancel()
            await loop.value
        }
    }

    /// Awaits `operation` until `deadline`: false when it had not finished by then (it goes on, unawaited: a
    /// statement blocked in libpq cannot be cancelled from here, and the process is about to exit).
    static func finishes(by deadline: ContinuousClock.Instant, _ operation: @escaping @Sendable () async -> Void) async -> Bool {
        let first = FirstAnswer()
        return await withCheckedContinuation { continuation in
            first.waiting.withLock { $0 = continuation }
            Task {
                await operation()
                first.answer(true)
            }
            Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                first.answer(false)
            }
        }
    }

    /// The one answer of ``finishes(by:_:)``: whichever comes first.
    private final class FirstAnswer: Sendable {
        let waiting = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        func answer(_ value: Bool) { waiting.withLock { $0.take() }?.resume(returning: value) }
    }

    /// Lateness samples recorded so far (``SchedulerConfiguration/recordLateness``), cleared by the call.
    public func takeLatenessSamples() -> LatenessSamples {
        defer { lateness = LatenessSamples() }
        return lateness
    }

    public var runsInProgress: Int { runs.count }

    func setLiveNodes(_ live: [String]) {
        if let cluster { slotPreference = SlotPreference(nodes: live, me: cluster.node) }
    }

    /// How often a cluster node marks itself alive (``ClusterDatabase/heartbeatTimeoutSeconds`` is five of these).
    static let heartbeatInterval: Duration = .seconds(2)

    /// The state a scrape reports (``MetricsEndpoint``): each task in one state, as `keiji task --list` shows it.
    /// Counted on demand, so the firing path keeps no extra books.
    public func metricsSnapshot() -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        for (name, task) in state.tasks {
            let label: SchedulerMetrics.TaskStateLabel =
                hasRuns(name) ? .running : task.pendingTriggers > 0 ? .queued : task.isError ? .error : task.isDisabled ? .disabled : .scheduled
            snapshot.tasks[label, default: 0] += 1
        }
        snapshot.runsInProgress = runs.count
        return snapshot
    }

    func hasRuns(_ name: TaskName) -> Bool { (activeRunCounts[name] ?? 0) > 0 }

    /// Whether run `runID` counts as one of its task's runs for overlap. A firing whose slot waits for its fallback
    /// claim (normally another node's slot, see ``SlotPreference``) does not: under a slow database the wait
    /// outlasted the interval, every node then found the next slot an overlap of a run it never started, and
    /// that slot ran nowhere (a cluster test lost a slot of every task so).
    func setCounted(_ runID: String, _ counted: Bool) {
        guard let run = runs[runID], run.counted != counted, !run.detached else { return }
        runs[runID]?.counted = counted
        if counted { count(run) } else { uncount(run) }
    }

    private func count(_ run: LiveRun) {
        activeRunCounts[run.task, default: 0] += 1
        if let end = run.endedAtMs { endsOfCountedRuns[run.task, default: []].append(end) }
    }

    private func uncount(_ run: LiveRun) {
        let left = (activeRunCounts[run.task] ?? 1) - 1
        activeRunCounts[run.task] = left > 0 ? left : nil
        if let end = run.endedAtMs, var ends = endsOfCountedRuns[run.task], let index = ends.firstIndex(of: end) {
            ends.remove(at: index)
            endsOfCountedRuns[run.task] = ends.isEmpty ? nil : ends
        }
    }

    func registerRun(_ runID: String, _ run: LiveRun) {
        runs[runID] = run
        if run.counted { count(run) }
    }

    /// The runs of `name`, whose task was just deleted, are stopped (their grace, then SIGKILL) and no longer count as
    /// runs of the name: a task created again under it neither waits for them nor is shown running.
    private func detachRuns(of name: TaskName) {
        for (runID, run) in runs where run.task == name && !run.detached {
            setCounted(runID, false)
            runs[runID]?.detached = true
            run.handle.terminate(reason: .stopped, grace: run.graceSeconds, because: "the task was deleted")
        }
    }

    /// Run `runID`'s process ended now; the run stays registered until its end is durable.
    func runEnded(_ runID: String) {
        guard let run = runs[runID], run.endedAtMs == nil else { return }
        let now = clock.nowMilliseconds()
        runs[runID]?.endedAtMs = now
        if run.counted { endsOfCountedRuns[run.task, default: []].append(now) }
    }

    /// Whether `name` has a run here that is more than a firing waiting for its slot's claim, and whose claim was
    /// won by `dueMs`, when the slot being decided came due. A run claimed only after that was itself waiting when
    /// the slot came: after a database stall the claims of the slots that waited come back together, and a slot
    /// due meanwhile but decided a moment after them (a loaded machine) was skipped as their overlap, though no
    /// run of its task was going on when it came (a cluster test lost such a slot under load).
    func hasClaimedRuns(_ name: TaskName, claimedBy dueMs: Int64) -> Bool {
        hasRuns(name) && runs.values.contains { run in
            run.task == name && run.counted && run.wasGoing(at: dueMs) && run.claimedAtMs.map { $0 <= dueMs } == true
        }
    }

    /// Whether a run of `name` counted for overlap was going on at `dueMs`, when the slot being decided came due. A
    /// run stays registered until its end is durable, some milliseconds after its process exited: a run that began
    /// late (its claim had waited behind a stalled database) exited 2 ms before its task's next slot came due, its
    /// end was still being journaled when that slot was decided, and the slot was skipped as its overlap and ran
    /// nowhere (a cluster test lost a slot so).
    func hasRunsGoing(_ name: TaskName, at dueMs: Int64) -> Bool {
        let counted = activeRunCounts[name] ?? 0
        guard counted > 0 else { return false }
        guard let ends = endsOfCountedRuns[name] else { return true }
        return counted > ends.count || ends.contains { $0 > dueMs }
    }

    /// The claims of `runIDs` were won: they count as runs of their tasks from now on.
    func claimsWon(_ runIDs: [String]) {
        let now = clock.nowMilliseconds()
        for runID in runIDs {
            runs[runID]?.claimedAtMs = now
            setCounted(runID, true)
        }
    }

    func unregisterRun(_ runID: String) {
        guard let run = runs.removeValue(forKey: runID) else { return }
        if run.counted { uncount(run) }
        if runs.isEmpty, !noRunsWaiters.isEmpty {
            for waiter in noRunsWaiters { waiter.resume() }
            noRunsWaiters.removeAll()
        }
    }

    /// Suspends until no run is registered: each has ended and its `run.finished` is durable (or was never begun).
    func waitUntilNoRuns() async {
        guard !runs.isEmpty else { return }
        await withCheckedContinuation { noRunsWaiters.append($0) }
    }

    // MARK: - Recording

    /// Appends a record, waits until it is durable, and applies it (in LSN order). Returns its LSN.
    @discardableResult
    func record(_ event: JournalEntry.Event) async throws -> UInt64 {
        try await record(contentsOf: [event]).upperBound
    }

    /// Appends records as one journal batch (consecutive LSNs, one sync), waits until it is durable, and
    /// applies them in LSN order. The timer journals all the firings due in one tick this way.
    @discardableResult
    func record(contentsOf events: [JournalEntry.Event]) async throws -> ClosedRange<UInt64> {
        let at = clock.nowMilliseconds()
        return try await record(entries: events.map { JournalEntry(at: at, $0) })
    }

    /// ``record(contentsOf:)`` of entries whose time is already set.
    func record(entries: [JournalEntry]) async throws -> ClosedRange<UInt64> {
        let lsns: ClosedRange<UInt64>
        let stopping = entries.count { Self.stopsItsTask($0.event) }
        stoppingCommandsUnapplied += stopping
        do {
            let encoded = try entries.map { try $0.encoded() }
            if encoded.count == 1 {
                let lsn = try await journal.append(encoded[0])
                lsns = lsn...lsn
            } else {
                lsns = try await journal.append(contentsOf: encoded)
            }
        } catch {
            stoppingCommandsUnapplied -= stopping
            await failStop(error)
            throw error
        }
        for (offset, entry) in entries.enumerated() { unapplied[lsns.lowerBound + UInt64(offset)] = entry }
        while let next = unapplied.removeValue(forKey: appliedThrough + 1) {
            appliedThrough += 1
            apply(next, lsn: appliedThrough)
        }
        return lsns
    }

    /// At most this many `run.finished` per batch: a burst of a hundred thousand ends goes out in slices, so the
    /// first of them are durable (and their tasks free to run again) long before the last are encoded.
    static let endedRunsBatchLimit = 1024

    /// Journals the `run.finished` of every run that ended since the last batch, as one batch, then settles each
    /// (``settle(_:)``) in this one job. Runs end independently, thousands a second at full load: one append
    /// each, and then one resumption of each run's task on this actor, were most of what an end cost, and those
    /// resumptions queued ahead of the timer loop.
    func flushEndedRuns() async {
        let count = min(endedRuns.count, Self.endedRunsBatchLimit)
        guard count > 0 else { return }
        lastEndedRunsFlush = .now
        // A run whose task was redefined since it ended owes no retry either (checked again as its end is journaled).
        let batch = endedRuns.prefix(count).map { ended in
            ended.willRetry && retryDropped(runID: ended.runID, name: ended.name, attempt: ended.attempt, stamp: ended.stamp) ? ended.final() : ended
        }
        endedRuns.removeFirst(count)
        if !endedRuns.isEmpty { Task { await self.flushEndedRuns() } }
        // A journal failure stops the engine (failStop).
        let now = clock.nowMilliseconds()
        let durable = (try? await record(entries: batch.map { JournalEntry(at: max(now, $0.notBeforeMs), $0.event) })) != nil
        // Their claims are marked finished (no other node takes them over now) before the runs unregister: a stop
        // waiting for the last run sends these marks with its `leave()`. Handed over one slot at a time after the
        // runs had unregistered, the marks after the first came after `leave()`, and the process exited first.
        // Not when the ends are not durable: the restart finds those runs interrupted in its journal, and settles
        // their claims by it (re-run as each task's policy says), which a finished claim would forbid.
        let finishedSlots = durable ? batch.compactMap { ended in ended.willRetry ? nil : ended.claimedSlot } : []
        if let cluster, !finishedSlots.isEmpty { cluster.finished(finishedSlots) }
        for ended in batch { settle(ended) }
    }

    /// Suspends until every record up to `lsn` is applied.
    func waitUntilApplied(_ lsn: UInt64) async {
        if appliedThrough >= lsn { return }
        await withCheckedContinuation { applyWaiters.append((lsn, $0)) }
    }

    private func apply(_ entry: JournalEntry, lsn: UInt64) {
        let name = entry.taskName
        let endsRunOfDeletedTask: Bool = switch entry.event {
        case .runFinished(let end): state.runsOfDeletedTasks?[end.runID] != nil
        case .runInterrupted(let runID, _, _, _): state.runsOfDeletedTasks?[runID] != nil
        default: false
        }
        let mayBegin = datesStarts && name.map { Self.reasonNotToBegin(state.tasks[$0]) == nil } ?? false
        Reducer.apply(entry, lsn: lsn, to: &state)
        if case .runStarted(let start) = entry.event, start.trigger == .manual, let taken = manualStartsUnapplied[start.task] {
            manualStartsUnapplied[start.task] = taken > 1 ? taken - 1 : nil
        }
        if mayBegin, let name, let reason = Self.reasonNotToBegin(state.tasks[name]) { withdrawDatedStarts(of: name, because: reason) }
        if Self.stopsItsTask(entry.event) { stoppingCommandsUnapplied -= 1 }
        if let name {
            dirtyTasks.insert(name)
            switch entry.event {
            case .taskSaved:
                redefinedTasks.insert(name)
                definitionSaves[name] = lsn
                // A start of the old definition the spawn server holds (its slot within the lead) must not begin now.
                withdrawDatedStarts(of: name, because: Self.redefinedBeforeItBegan)
            case .taskDeleted:
                definitionSaves[name] = nil
                detachRuns(of: name)
                // A task of this name created again before the next flush starts without these rows and runs.
                deletedTasks.insert(name)
                newRuns.removeAll { $0.0 == name }
            case .runFinished, .runMissed, .runInterrupted:
                if !endsRunOfDeletedTask, let run = state.tasks[name]?.recentRuns.last { newRuns.append((name, run)) }
            default: break
            }
        }
        recordsSinceCheckpoint += 1
        if !applyWaiters.isEmpty {
            let ready = applyWaiters.filter { $0.0 <= appliedThrough }
            applyWaiters.removeAll { $0.0 <= appliedThrough }
            for (_, continuation) in ready { continuation.resume() }
        }
    }

    /// A command after which its task's runs must not begin.
    static func stopsItsTask(_ event: JournalEntry.Event) -> Bool {
        switch event {
        case .taskDisabled, .taskDeleted: true
        default: false
        }
    }

    /// Starts applying from the replayed state (recovery calls this once).
    func adopt(_ loaded: SchedulerState, appliedThrough lsn: UInt64) {
        state = loaded
        appliedThrough = lsn
        state.lastLSN = lsn
    }

    /// The journal failed (disk error): nothing more can be made durable, so nothing more may happen.
    private func failStop(_ error: any Error) async {
        guard phase == .running else { return }
        phase = .failed
        journalFailure = "\(error)"
        note("FATAL: the journal failed, stopping all work: \(error)")
        stopTimers()
        for run in runs.values { run.handle.terminate(reason: .stopped, grace: 1, because: "the journal failed") }
        await endRunsAwaitingSlot()
    }

    public var hasFailed: Bool { phase == .failed }

    // MARK: - View and checkpoints

    private func flushViewPeriodically() async {
        while (try? await Task.sleep(for: configuration.viewFlushInterval)) != nil {
            await flushView()
            viewFlushes += 1
            if recordsSinceCheckpoint >= configuration.checkpointEvery, ContinuousClock.now - lastCheckpoint >= configuration.checkpointSpacing {
                try? await writeCheckpoint()
            }
        }
    }

    /// Returns once the query view shows everything applied so far, including what recovery found it lacking
    /// (the engine fires meanwhile). `keiji-scheduler` reports ready only after this, so the CLI reads a current view.
    public func waitForView() async {
        await flushView(evenIfUnchanged: true)
    }

    /// Hands what changed since the last flush to the view writer and waits for it (the engine keeps firing
    /// meanwhile: the wait is a suspension, not a block).
    func flushView(evenIfUnchanged: Bool = false) async {
        guard let viewWriter, evenIfUnchanged || !dirtyTasks.isEmpty || !newRuns.isEmpty else { return }
        let changes = state  // copy-on-write: O(1) here; the writer reads only the touched tasks
        let touched = dirtyTasks
        let redefined = redefinedTasks
        let runs = newRuns
        let deleted = deletedTasks
        dirtyTasks.removeAll(keepingCapacity: true)
        redefinedTasks.removeAll(keepingCapacity: true)
        newRuns.removeAll(keepingCapacity: true)
        deletedTasks.removeAll()
        if let error = await viewWriter.write(changes, touched: touched, redefined: redefined, newRuns: runs, deleted: deleted) {
            // Nothing of this flush was written (one transaction): try these rows again next time.
            dirtyTasks.formUnion(touched)
            redefinedTasks.formUnion(redefined)
            let deletedMeanwhile = deletedTasks
            deletedTasks.formUnion(deleted)
            newRuns.insert(contentsOf: runs.filter { !deletedMeanwhile.contains($0.0) }, at: 0)
            if viewBehindSince == nil {
                viewBehindSince = clock.nowMilliseconds()
                note("query view update failed, will retry (said again when it catches up): \(error)")
            }
            // Until it is written: on the full disk that holds the view back, the first tries often fail too.
            if !viewLagRecorded, let since = viewBehindSince {
                viewLagRecorded = (try? ViewLag.record(since: since, reason: "\(error)", workspace: configuration.workspace)) != nil
            }
        } else if let since = viewBehindSince {
            viewBehindSince = nil
            viewLagRecorded = false
            ViewLag.clear(configuration.workspace)
            note("query view caught up after \(String(format: "%.1f", Double(clock.nowMilliseconds() - since) / 1000)) s behind the journal")
        }
    }

    /// Snapshots the state at its LSN. The encoding (tens of milliseconds for a large state) runs on a copy on
    /// the background thread, so firings are not held up; at a stop, with nothing left to hold up, on this actor
    /// (the view's writes share that thread, and one may never return).
    func writeCheckpoint(encodingOnBackground: Bool = true) async throws {
        recordsSinceCheckpoint = 0
        lastCheckpoint = ContinuousClock.now
        let copy = state
        let snapshot = encodingOnBackground ? try await background.run { try StateLoader.snapshot(copy) } : try StateLoader.snapshot(copy)
        try await journal.writeCheckpoint(snapshot, at: copy.lastLSN)
        try await journal.compact()
    }

    // MARK: - Logging

    func note(_ message: String) {
        try? log.append(message, at: clock.nowMilliseconds())
    }

    /// Says once per step that the wall clock went back, and what that means for the tasks.
    func noteClockSteppedBack(byMilliseconds back: Int64) {
        let seconds = String(format: "%.1f", Double(back) / 1000)
        note("warning: the wall clock stepped back by \(seconds) s: no slot runs twice, so each task resumes at its next slot after the last "
             + "one it ran, up to \(seconds) s later than it would have (`--every` tasks too: their slots are wall-clock instants)")
    }
}
