import Foundation
import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

extension SchedulerEngine {
    /// How many times a scheduler restart may interrupt runs of the same slot before recovery gives the slot up
    /// and puts the task in error (a run that crashes the scheduler would otherwise crash-loop it forever).
    static let interruptionLimit = 3

    /// A run recovery decided on: a re-run of an interrupted slot, or a catch-up of a missed one.
    struct RecoveryRun {
        var task: TaskName
        var slot: Int64?
        var trigger: RunTrigger
        var attempt: Int
        /// Interruptions of this slot so far (re-runs only).
        var interruptions: Int?
        /// See ``Firing/claimsAfresh``.
        var claimsAfresh = false

        /// Its slot's claim (nil for a manual run).
        var claimedSlot: ClaimedSlot? { slot.map { ClaimedSlot(task: task.rawValue, slot: $0) } }

        /// Its firing, due at `fireAtMs`.
        func firing(at fireAtMs: Int64) -> Firing {
            Firing(task: task, slot: slot, fireAtMs: fireAtMs, trigger: trigger, attempt: attempt, interruptions: interruptions,
                   claimsAfresh: claimsAfresh)
        }
    }

    /// Recovery on start (DESIGN §3): replay; runs started but never finished become `interrupted` (and are
    /// re-run per task policy); slots missed while down follow each task's catch-up policy; commands the view
    /// had not applied are applied. Every decision lands in the report, which is journaled and written to
    /// `~/.keiji/recovery.json`.
    func recover() async throws -> RecoveryReport {
        let started = ContinuousClock.now
        let workspace = configuration.workspace
        // Before the replay: a database that cannot be used (DB_URL) stops the start at once, with nothing journaled.
        let writer = ViewWriter(location: ViewLocation(settings: configuration.settings, workspace: workspace), workspace: workspace,
                                defaultTimeZone: configuration.settings.timeZone, on: background)
        let fresh = try await writer.open()
        var ownClaimsAtStart: [OwnClaim] = []
        // When this node was last alive in the cluster (its last heartbeat; seconds since the epoch), if it was before.
        var lastAlive: Int64?
        if case .postgres(let url) = configuration.settings.database {
            // Every scheduler on this database is a node of one cluster: its slots are claimed there.
            let link = ClusterLink(url: url, node: configuration.settings.nodeName) { [weak self] line in
                Task { await self?.note(line) }
            }
            let identity = NodeIdentity(timeZone: configuration.settings.timeZoneIdentifier, workspaceID: try workspace.clusterNodeID(),
                                        journalLSN: journal.lastLSN)
            let opened = try await link.open(as: identity)
            (appliedCommandSeq, ownClaimsAtStart) = (opened.appliedSeq, opened.ownClaims)
            lastAlive = opened.lastBeatSecondsAgo.map { (clock.nowMilliseconds() - Int64($0 * 1000)) / 1000 }
            if opened.journalReplaced {
                note("warning: cluster: NODE_NAME=\(link.node) was last used by another workspace or journal (its applied position is not this "
                     + "journal's): this node applies the cluster's command log from the start")
            }
            cluster = link
            setLiveNodes(await link.heartbeat.beat() ?? [])
        }
        var loaded = try StateLoader.load(from: journal)
        if let old = loaded.rebase(onto: configuration.workspace) {
            note("the workspace was moved: \(loaded.rebased.count) task(s) saved with paths in another HOME (such as \(old)) run from "
                 + "\(configuration.workspace.tasksDirectory) and \(configuration.workspace.executablesDirectory)")
        }
        adopt(loaded.state, appliedThrough: journal.lastLSN)
        definitionSaves = loaded.definitionSaveLSNs

        let previous: RecoveryReport.PreviousShutdown =
            loaded.state.schedulerRunning ? .crash : (loaded.state.schedulerHasStarted ? .clean : .firstStart)
        var report = RecoveryReport(startedAt: clock.nowMilliseconds(), previousShutdown: previous)
        if let cluster { report.cluster = RecoveryReport.Cluster(node: cluster.node) }
        report.journal.recordsReplayed = loaded.recordsReplayed
        report.journal.replaySeconds = loaded.seconds
        report.journal.checkpointLSN = journal.latestCheckpoint?.lsn
        report.journal.lastLSN = journal.lastLSN
        if let latest = state.latestRecordedInstant, latest - report.startedAt > ClockStepWatch.threshold {
            report.journalAheadAt = latest
            note("warning: " + RecoveryReport.journalAheadText(by: latest - report.startedAt))
        }
        // Earlier opens' repairs first (a CLI command, a compaction, a start that refused): this report is the first
        // to list them, and the journal forgets them once it is journaled.
        let repairs = journal.earlierRepairs.map(\.repair) + journal.recovery.repairs
        report.journal.bytesRepaired = repairs.reduce(0) { $0 + $1.bytes }
        report.journal.repairs = journal.earlierRepairs.map(\.description) + journal.recovery.repairs.map(\.description)
        let lost = LSNRange.merged(repairs.flatMap(\.lostAcknowledgedLSNs))
        report.journal.lostLSNs = lost.isEmpty ? nil : lost
        // A salvage keeps records after what it lost, so a run started before a lost record may have ended there: its
        // later runs and a clean stop can be in the journal. Such a run is not re-run (its slot would run twice).
        let salvageLost = LSNRange.merged(
            (journal.earlierRepairs.filter { $0.mode == .salvage }.map(\.repair)
                + (journal.recovery.mode == .salvage ? journal.recovery.repairs : [])).flatMap(\.lostAcknowledgedLSNs))
        // Records that could not be applied: their tasks are in error (their loops never start); others run.
        report.refusedRecords = loaded.refused.isEmpty ? nil : loaded.refused
        for refused in loaded.refused {
            note("refused \(refused.type ?? "record") at LSN \(refused.lsn.map(String.init) ?? "checkpoint")\(refused.task.map { " for \($0)" } ?? ""): \(refused.reason) (\(refused.action))")
        }

        // Planned now, written by the view's writer once firing has begun (``ViewCatchUp``).
        // A repair that lost acknowledged records, by this open or an earlier one (a strict start that set a checkpoint
        // aside and refused, then this pointInTime start), leaves the view with what the state no longer has.
        let journalLostRecords = repairs.contains(where: \.losesAcknowledgedRecords)
        let catchUp = try await writer.planCatchUp(with: loaded, fresh: fresh, journalLostRecords: journalLostRecords)
        report.commandsReapplied = catchUp.commandsReapplied
        report.viewRebuilt = fresh || catchUp.viewWasAheadAt != nil || journalLostRecords
        if let ahead = catchUp.viewWasAheadAt {
            report.viewAheadOfJournalAt = ahead
            note("warning: \(RecoveryReport.viewAheadText(view: ahead, journal: journal.lastLSN)); the view is rebuilt from the journal")
        }
        viewWriter = writer

        try await record(.schedulerStarted(pid: getpid()))

        // Runs a crash interrupted.
        // Runs of deleted tasks too: their processes are killed, and they are no runs of a task of their name now.
        let ofDeletedTasks = state.runsOfDeletedTasks ?? [:]
        let interrupted = (Array(state.activeRuns.values) + ofDeletedTasks.values)
            .sorted { ($0.startedAt, $0.start.runID) < ($1.startedAt, $1.start.runID) }
        let orphans = OrphanReaper.killProcesses(ofRuns: Set(interrupted.map(\.start.runID)))
        if orphans > 0 { note("killed \(orphans) processes left by interrupted runs") }
        var reruns: [RecoveryRun] = []
        var interruptedRecords: [JournalEntry.Event] = []
        var givenUpTasks: Set<TaskName> = []
        // In a cluster, a node that was down long enough finds its interrupted slots taken over by another.
        let holders = await cluster?.holders(of: interrupted.compactMap { run in
            run.start.slot.map { ClaimedSlot(task: run.start.task.rawValue, slot: $0) } }) ?? [:]
        for run in interrupted {
            let name = run.start.task
            // Counted from the journaled run.started, so a replay reaches the same decision.
            let interruptions = (run.start.interruptions ?? 0) + 1
            var givenUp: String?
            let action: String
            let holder = run.start.slot.flatMap { holders[ClaimedSlot(task: name.rawValue, slot: $0)] }
            // A run read from the checkpoint started at or before its LSN.
            let startLSN = loaded.activeRunStartLSNs[run.start.runID] ?? (journal.latestCheckpoint?.lsn ?? 0)
            let lostAfterStart = salvageLost.filter { $0.upperBound > startLSN }
            var endLost: String?
            if ofDeletedTasks[run.start.runID] != nil {
                action = "not re-run (task deleted)"
            } else if let holder, holder != cluster?.node {
                action = "taken over by \(holder) (not re-run here)"
            } else if !lostAfterStart.isEmpty {
                let lsns = LSNRange.list(lostAfterStart)
                endLost = RunEnd.endLostMessage(lsns)
                action = RecoveryReport.InterruptedRun.endMayBeLostAction + ", LSNs \(lsns))"
            } else if let task = state.tasks[name] {
                if !task.definition.policy.rerunInterrupted {
                    action = "not re-run (policy)"
                } else if task.isDisabled || task.isError || givenUpTasks.contains(name) {
                    action = task.isDisabled ? "not re-run (task disabled)" : "not re-run (task in error)"
                } else if redefined(name, afterRunStartedAt: startLSN, run.startedAt, checkpointLSN: journal.latestCheckpoint?.lsn ?? 0) {
                    // A re-run is the task's definition now: one redefined during the run would run a command that never
                    // began this slot. A `--disable` and `--enable` during it changed no definition: it is re-run.
                    action = "not re-run (task changed during the run)"
                } else if interruptions >= Self.interruptionLimit {
                    let what = run.start.slot.map { "slot \(ISO8601.string(fromSeconds: $0))" } ?? "a manual run"
                    givenUp = "run of \(what) interrupted \(interruptions) times by scheduler restarts; given up"
                    action = "given up (interrupted \(interruptions) times); task in error"
                    givenUpTasks.insert(name)  // in error once the batch below is applied
                } else {
                    action = "re-run"
                    reruns.append(RecoveryRun(task: name, slot: run.start.slot, trigger: .recovery, attempt: run.start.attempt + 1,
                                              interruptions: interruptions))
                }
            } else {
                action = "not re-run (task deleted)"
            }
            interruptedRecords.append(.runInterrupted(runID: run.start.runID, task: name, givenUp: givenUp, endLost: endLost))
            report.interruptedRuns.append(.init(task: name, runID: run.start.runID, slot: run.start.slot, startedAt: run.startedAt,
                                                action: action, attempt: run.start.attempt, interruptions: interruptions))
        }

        if !interruptedRecords.isEmpty { try await record(contentsOf: interruptedRecords) }

        // Retries that were waiting out their backoff: the wait is in memory, so a stop or a crash dropped them, and
        // the task went back to its schedule with attempts unspent. In a cluster only those whose slots this node
        // still holds (the claim is kept unfinished for the retry): another node may have taken one over and run it.
        var retries = owedRetries(rerunning: Set(reruns.map(\.task)))
        if cluster != nil {
            let held = Set(ownClaimsAtStart.map { ClaimedSlot(task: $0.task, slot: $0.slot) })
            retries.removeAll { retry in retry.run.claimedSlot.map { !held.contains($0) } ?? true }
        }
        report.retriesResumed = retries.isEmpty ? nil : retries.map {
            RecoveryReport.ResumedRetry(task: $0.run.task, slot: $0.run.slot, attempt: $0.run.attempt, dueAt: $0.dueAtMs)
        }
        retriesAfterRecovery = retries

        // This node's own unfinished claims, looked up as it joined, settled by its journal (see
        // ``resolveOwnClaims(_:rerunning:cluster:)``); not at a first start, whose journal knows none of them.
        var ownRuns: [RecoveryRun] = []
        var retaken: [TakenOverSlot] = []
        if let cluster, previous != .firstStart, !ownClaimsAtStart.isEmpty {
            let rerunning = Set((reruns + retries.map(\.run)).compactMap(\.claimedSlot))
            let resolution = resolveOwnClaims(ownClaimsAtStart, rerunning: rerunning, cluster: cluster)
            (ownRuns, retaken) = (resolution.runs, resolution.retaken)
            report.cluster?.ownClaims = resolution.report
        }

        // Slots that passed while the scheduler was down: the same rule the live timer applies after a stall. In a
        // cluster, those up to each task's latest claim were the other nodes' (run, or recorded skipped by them).
        let now = clock.nowMilliseconds()
        var catchUps: [RecoveryRun] = []
        var missedRecords: [JournalEntry.Event] = []
        report.cluster?.slotsRunElsewhere = await skipSlotsClaimedElsewhere(of: Array(state.tasks.keys), countingAfter: lastAlive)  // in a cluster only
        for name in state.tasks.keys.sorted() {
            guard let task = state.tasks[name], !task.isDisabled, !task.isError else { continue }
            let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
            let rerunning = reruns.contains { $0.task == name }
            guard let plan = CatchUpRule.plan(for: task, calculator: calculator, after: cursor(of: name, task), through: now,
                                              rerunning: rerunning) else { continue }
            if let missed = plan.missed { missedRecords.append(.runMissed(missed)) }
            report.missedSlots.append(.init(task: name, policy: task.definition.policy.catchUp, count: plan.total, firstSlot: plan.firstSlot,
                                            lastSlot: plan.lastSlot, runs: plan.toRun.count))
            if !plan.toRun.isEmpty {
                firedSlots[name] = plan.lastSlot
                catchUps += plan.toRun.map { RecoveryRun(task: name, slot: $0, trigger: .catchUp, attempt: 1, interruptions: nil) }
            }
        }

        // One batch (one sync), not a sync per task: a thousand tasks down for a while is a thousand records.
        if !missedRecords.isEmpty { try await record(contentsOf: missedRecords) }

        // What nodes that stopped left unfinished, and what this node had taken over from them and not begun. Not
        // yet what silent nodes left: this node's heartbeat has not gone on without a break for the timeout, so it
        // cannot tell a dead node from one that has not beaten since the database came back (the heartbeat's rule,
        // ``takeOverAbandonedSlots()``). Taken here, a restart just after an outage of the whole database re-ran
        // the others' ended runs.
        var takenOver: [RecoveryRun] = []
        let taken = await cluster?.takeOver(lostNodes: false) ?? []
        // A slot of a task this node does not know yet (made on another node since it last ran), or knows disabled
        // or in error (perhaps enabled or resolved there since), is decided once the commands are pulled
        // (``decideTakeoversAfterPull()``): decided now, it was "not run (task deleted)" or "(task disabled)", and
        // ran nowhere. A task enabled here and disabled since is caught when its run fires.
        let decidable = (taken + retaken).filter(isEnabledHere)
        takeoversDecidedAfterPull = (taken + retaken).filter { !isEnabledHere($0) }
        if let cluster, !decidable.isEmpty {
            let (queues, decided) = decide(decidable, cluster)
            report.cluster?.append(decided)
            // A slot this node's own catch-up or re-runs already cover is started once.
            let planned = Set((reruns + ownRuns + catchUps).compactMap(\.claimedSlot))
            takenOver = queues.flatMap(\.1).filter { run in run.claimedSlot.map { !planned.contains($0) } ?? true }
        }
        // A task's catch-up runs go one after another, so a later one claims its slot well after this start looked the
        // claims up. One this node's heartbeat takes over meanwhile (another node claimed that past slot, as its own
        // catch-up after a cluster-wide restart, and stopped) has its run queued by that takeover: catch-ups claim
        // afresh, all but those of the slots taken over just above, which that takeover left to them.
        let leftToCatchUps = Set((taken + retaken).map { ClaimedSlot(task: $0.task, slot: $0.slot) })
        for index in catchUps.indices {
            catchUps[index].claimsAfresh = !(catchUps[index].claimedSlot.map(leftToCatchUps.contains) ?? false)
        }
        // Claims settled above are finished before any run claims: a catch-up of a slot just taken over and not
        // to be re-run must find it finished.
        await cluster?.sendFinishes()

        report.durationSeconds = (ContinuousClock.now - started).seconds
        let journaled = Self.journaled(report)
        if journaled != report {
            note("recovery report journaled with at most \(Self.journaledReportEntries) entries per list; recovery.json has all of it")
        }
        try await record(.recoveryCompleted(journaled))
        // After a loss the record of the repairs is what makes the next start rebuild the view too: it is cleared
        // only once the rebuild is written, here rather than at the first flush (a kill in between left a view
        // with tasks the state had lost, and no record to say so).
        if journalLostRecords, catchUp.isNeeded { await flushView(evenIfUnchanged: true) }
        if journalLostRecords, await writer.owesCatchUp {
            note("the query view's rebuild is not written yet: the journal's record of repairs is kept for the next start")
        } else {
            do {
                try journal.markRepairsReported()
            } catch {
                // The next start lists them again: said twice rather than not at all.
                note("warning: cannot clear the journal's record of repairs now reported: \(error)")
            }
        }
        recoveryReport = report
        saveRecoveryReport()
        pendingRecoveryRuns = reruns + ownRuns + catchUps + takenOver
        note(Self.summary(of: report))
        return report
    }

    /// In a cluster: moves each task's cursor (``firedSlots``) up to the latest slot any node has claimed of it, so
    /// that the slots the other nodes ran while this one was down (or before it had the task) are neither caught up
    /// nor recorded missed here; a claim of this node's own is settled by its journal as before. Returns how many
    /// slots were so passed over (nil when none, or when the database did not answer: then every passed slot
    /// follows the catch-up policy, and claims keep any from running twice).
    /// `countingAfter` (a restart: its last heartbeat before it went down): only the slots after it are counted, those
    /// that passed while it was down. Counted from each task's cursor, its own last run of it (or the task's anchor),
    /// a restart of 0.2 s counted hundreds, run by the others while it was up.
    func skipSlotsClaimedElsewhere(of names: [TaskName], countingAfter downSince: Int64? = nil) async -> Int? {
        guard let cluster, !names.isEmpty, let latest = await cluster.lastClaimedSlots(of: names) else { return nil }
        var passed = 0
        for (name, claimed) in latest {
            guard let task = state.tasks[name] else { continue }
            let from = cursor(of: name, task)
            guard claimed > from else { continue }
            let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
            let counted = max(from, downSince ?? from)
            if claimed > counted { passed += calculator.slots(after: counted, through: claimed, limit: 0).dropped }
            firedSlots[name] = claimed
        }
        return passed > 0 ? passed : nil
    }

    /// The restart's takeovers of slots whose tasks it did not know, or knew disabled or in error (``recover()``
    /// leaves them), decided on the definitions the commands pulled after recovery left; their runs start with
    /// the recovery's.
    func decideTakeoversAfterPull() async {
        guard let cluster, !takeoversDecidedAfterPull.isEmpty else { return }
        let (queues, decided) = decide(takeoversDecidedAfterPull, cluster)
        takeoversDecidedAfterPull = []
        recoveryReport?.cluster?.append(decided)
        saveRecoveryReport()
        await cluster.sendFinishes()
        pendingRecoveryRuns += queues.flatMap(\.1)
    }

    /// Starts the runs recovery decided on, once the engine runs and before the timer starts: the first run of
    /// each task is registered (and journaled, all in one batch) before the timer can fire a fresh slot (which
    /// would make an overlap-skipping task skip the re-run). Further catch-up runs of a task go one after another.
    /// `fire` checks again that each task is still enabled and not in error: a command or a failed run in
    /// between stops the rest.
    func startRecoveryRuns() async {
        let runs = pendingRecoveryRuns
        pendingRecoveryRuns.removeAll()
        await startCatchUps(runs)
        for (run, dueAtMs) in retriesAfterRecovery {
            let stamp = stamp(of: run.task)  // a redefinition during the backoff drops it, as in ``retry(_:)``
            Task { [weak self] in
                guard let self else { return }
                let wait = dueAtMs - clock.nowMilliseconds()
                if wait > 0 { try? await Task.sleep(for: .milliseconds(wait)) }
                guard await phase == .running else { return }
                var firing = run.firing(at: clock.nowMilliseconds())
                firing.stamp = stamp
                _ = await fire([firing])
            }
        }
        retriesAfterRecovery = []
    }

    /// The retries a stop or a crash dropped while they waited out their backoff: a task whose latest run (missed
    /// slots aside) failed with attempts left, its end journaled as not final (so the task is not in error), and
    /// nothing ran after it. Each is due at the failed run's end plus its backoff. A task whose interrupted run is
    /// re-run now (`rerunning`) started its next run already.
    /// A task changed since the failure (disabled, enabled, resolved, saved again) owes nothing, as in the running
    /// engine (`retry`): a `--disable` during the backoff drops the retry, and a later `--enable` or restart must not
    /// bring it back, days later perhaps.
    func owedRetries(rerunning: Set<TaskName>) -> [(run: RecoveryRun, dueAtMs: Int64)] {
        state.tasks.keys.sorted().compactMap { name in
            guard let task = state.tasks[name], !task.isDisabled, !task.isError, !rerunning.contains(name),
                  let latest = task.recentRuns.last(where: { !$0.outcome.hasPrefix("missed") }),
                  RunOutcome(rawValue: latest.outcome)?.isFailure == true, latest.attempt <= task.definition.policy.retries,
                  task.updatedAt <= latest.finishedAt
            else { return nil }
            let backoff = task.definition.policy.retryDelaySeconds(afterAttempt: latest.attempt)
            let due = TimeArithmetic.sum(latest.finishedAt, TimeArithmetic.milliseconds(fromSeconds: backoff))
            return (RecoveryRun(task: name, slot: latest.slot, trigger: .retry, attempt: latest.attempt + 1, interruptions: nil), due)
        }
    }

    /// Fires the first run of each task in `items` as one journal batch, and the rest of each task's runs in
    /// order, each once the task's previous run has ended.
    func startCatchUps(_ items: [RecoveryRun]) async {
        guard !items.isEmpty else { return }
        var firsts: [Firing] = []
        var rest: [TaskName: [RecoveryRun]] = [:]
        var order: [TaskName] = []
        for item in items {
            if rest[item.task] == nil {
                rest[item.task] = []
                order.append(item.task)
                firsts.append(item.firing(at: clock.nowMilliseconds()))
            } else {
                rest[item.task]?.append(item)
            }
        }
        // Stamped before the first runs are journaled: a command applied meanwhile is one the queue must see.
        let bases = Dictionary(uniqueKeysWithValues: order.compactMap { name in queueBasis(of: name).map { (name, $0) } })
        _ = await fire(firsts)
        queueCatchUps(order.compactMap { name in rest[name].map { (name, $0) } }, bases: bases)
    }

    /// Fires each task's `runs` in order, each once the task's previous run has ended. The task's schedule waits
    /// meanwhile (it is armed again after the last of them): its next slot, often due within the second, would
    /// otherwise collide with the queue, and with overlap `skip` one of them would be dropped.
    /// Each run is stamped with the task's definition when queued (``QueueBasis``; `bases`: as taken earlier): once the
    /// task was redefined, deleted (and perhaps created again), disabled or put in error since, the rest of the queue is
    /// dropped when its turn comes, and recorded.
    func queueCatchUps(_ queues: [(TaskName, [RecoveryRun])], bases: [TaskName: QueueBasis] = [:]) {
        for (name, queued) in queues where !queued.isEmpty {
            catchingUp.insert(name)
            disarm(name)
            let basis = bases[name] ?? queueBasis(of: name)
            Task { [weak self] in
                for index in queued.indices {
                    guard let self else { return }
                    await self.waitForRuns(of: name)
                    // Once the queue ends, the rest of it is dropped at once (``prepare(_:missed:)`` records each).
                    let ended = if let basis { await self.whyQueueEnds(basis, name) } else { nil as String? }
                    let now = self.clock.nowMilliseconds()
                    _ = await self.fire(queued[index...(ended != nil ? queued.count - 1 : index)].map { item in
                        var firing = item.firing(at: now)
                        firing.stamp = basis?.stamp
                        firing.droppedBecause = ended
                        return firing
                    })
                    if ended != nil { break }
                }
                await self?.waitForRuns(of: name)  // the last catch-up run ends before the schedule resumes
                await self?.caughtUp(name)
            }
        }
    }

    private func caughtUp(_ name: TaskName) async {
        // Not when its task was deleted meanwhile: a task created again under its name was armed as it was saved.
        guard catchingUp.remove(name) != nil, phase == .running, armed[name] == nil else { return }
        await missSlotsPassedDuringCatchUp(of: name)
        if phase == .running, armed[name] == nil { arm(name) }
    }

    /// The slots whose moments came while the task's catch-up runs went one after another, its schedule waiting, but
    /// the latest: they came while a run of it was going, so they are missed as such a slot is (`overlap`), and the
    /// latest fires now, late, as a slot just due does. Armed with all of them still ahead of its cursor, the task
    /// caught them up again under `catch-up all`: one whose runs take about its interval never left catch-up. In a
    /// cluster they are left to the timer loop's rule for a stalled node, which first looks up the slots the other
    /// nodes claimed meanwhile.
    private func missSlotsPassedDuringCatchUp(of name: TaskName) async {
        guard cluster == nil, let task = state.tasks[name], !task.isDisabled, !task.isError else { return }
        let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
        let now = clock.nowMilliseconds()
        let passed = CatchUpRule.passedSlots(of: task, calculator: calculator, after: cursor(of: name, task), through: now, limit: 2)
        guard passed.slots.count == 2 else { return }
        firedSlots[name] = passed.slots[0]
        let missed = RunMissed(task: name, slot: passed.slots[0], count: passed.dropped + 1, reason: .overlap)
        _ = try? await record(entries: [JournalEntry(at: now, .runMissed(missed))])
    }

    func waitForRuns(of name: TaskName) async {
        while phase == .running, hasRuns(name) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Entries kept per list in the journaled report.
    static let journaledReportEntries = 1000

    /// The report as journaled. A record is at most `maxRecordSize` (4 MiB), and the missed slots of 100,000
    /// tasks are more than that, so each list is cut to its first ``journaledReportEntries`` entries there.
    /// Nothing is lost: every missed slot and interrupted run has its own record, and `recovery.json` (and the
    /// report `start()` returns) keep the whole report.
    static func journaled(_ report: RecoveryReport) -> RecoveryReport {
        var cut = report
        let limit = journaledReportEntries
        if cut.missedSlots.count > limit { cut.missedSlots.removeLast(cut.missedSlots.count - limit) }
        if cut.interruptedRuns.count > limit { cut.interruptedRuns.removeLast(cut.interruptedRuns.count - limit) }
        if let refused = cut.refusedRecords, refused.count > limit { cut.refusedRecords = Array(refused.prefix(limit)) }
        if let retries = cut.retriesResumed, retries.count > limit { cut.retriesResumed = Array(retries.prefix(limit)) }
        if let own = cut.cluster?.ownClaims, own.count > limit { cut.cluster?.ownClaims = Array(own.prefix(limit)) }
        if cut.journal.repairs.count > limit { cut.journal.repairs.removeLast(cut.journal.repairs.count - limit) }
        return cut
    }

    static func summary(of report: RecoveryReport) -> String {
        var parts = ["recovery: previous shutdown \(report.previousShutdown.rawValue)",
                     "\(report.journal.recordsReplayed) records replayed in \(String(format: "%.3f", report.journal.replaySeconds)) s"]
        if report.journal.bytesRepaired > 0 { parts.append("\(report.journal.bytesRepaired) bytes repaired") }
        if let lost = report.journal.lostLSNs { parts.append("acknowledged records lost at LSNs \(LSNRange.list(lost))") }
        let endLost = report.interruptedRuns.filter(\.endMayBeLost).count
        if report.interruptedRuns.count > endLost { parts.append("\(report.interruptedRuns.count - endLost) interrupted runs") }
        if endLost > 0 { parts.append("\(endLost) runs not re-run (their end may be among the records salvage lost)") }
        if let retries = report.retriesResumed { parts.append("\(retries.count) retries resumed") }
        let missed = report.missedSlots.reduce(0) { $0 + $1.count }
        if missed > 0 { parts.append("\(missed) missed slots in \(report.missedSlots.count) tasks") }
        if report.commandsReapplied > 0 { parts.append("\(report.commandsReapplied) commands re-applied to the view") }
        if report.viewRebuilt { parts.append("query view rebuilt") }
        if let refused = report.refusedRecords { parts.append("\(refused.count) records refused") }
        if let cluster = report.cluster, cluster.slotsTakenOver > 0 { parts.append("\(cluster.slotsTakenOver) slots taken over from other nodes") }
        if let elsewhere = report.cluster?.slotsRunElsewhere { parts.append("\(elsewhere) slots that passed meanwhile were settled by other nodes") }
        if let own = report.cluster?.ownClaims {
            let runs = own.filter { $0.action.hasPrefix("run") }.count
            parts.append("\(own.count) unfinished claims of this node settled (\(runs) never began and run now)")
        }
        return parts.joined(separator: ", ")
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
