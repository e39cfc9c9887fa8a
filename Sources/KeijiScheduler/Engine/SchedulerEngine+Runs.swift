import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

extension SchedulerEngine {
    // MARK: - Firing

    /// One run to start: a slot (scheduled, catch-up, re-run, retry) or a manual trigger (`slot` nil).
    struct Firing {
        var task: TaskName
        var slot: Int64?
        var fireAtMs: Int64
        var trigger: RunTrigger
        var attempt = 1
        var interruptions: Int?
        /// The slot's first claim here: the timer's firing (on time, or caught up after a stall), a catch-up after
        /// a database outage, or a restart's catch-up. A claim this node holds because it took the slot over from
        /// another node is not such a firing's to run: the takeover queued the slot's own run
        /// (``takeOverAbandonedSlots()``), perhaps while this firing's claim was on its way. (A restart's catch-ups
        /// of slots its own takeover took are not: that takeover leaves a slot they cover to them.)
        var claimsAfresh = false
        /// The definition it was queued under, for one that waited (a queued catch-up, a retry resumed at a restart): it
        /// runs only if that is still its task's (nil: it runs the definition current when it fires).
        var stamp: DefinitionStamp?
        /// Why the queue it waited in ended (``whyQueueEnds(_:_:)``): it is dropped, and recorded (``dropped(_:because:)``).
        var droppedBecause: String?

        /// Its slot's claim (nil for a manual run).
        var claimedSlot: ClaimedSlot? { slot.map { ClaimedSlot(task: task.rawValue, slot: $0) } }
    }

    /// Slots waiting out the fallback delay (``claimAfterFallbackDelay(_:)``), and who waits for their answer.
    struct FallbackClaim {
        var due: ContinuousClock.Instant
        var slots: [ClaimedSlot]
        var reply: CheckedContinuation<HeldSlots?, Never>
    }

    /// At most one lookup statement for slots preferred elsewhere this often (they wait 250 ms anyway).
    static let fallbackClaimInterval: Duration = .milliseconds(50)

    /// Starts one run for `slot` unless the overlap policy says to skip it (a manual run is no overlap).
    /// Returns the LSN of the `run.started` or `run.missed` record once it is durable.
    @discardableResult
    func fire(_ name: TaskName, slot: Int64?, fireAtMs: Int64, trigger: RunTrigger, attempt: Int = 1, interruptions: Int? = nil) async -> UInt64? {
        await fire([Firing(task: name, slot: slot, fireAtMs: fireAtMs, trigger: trigger, attempt: attempt, interruptions: interruptions)]).first ?? nil
    }

    /// Decides each firing, journals every `run.started` and `run.missed` (the given `missed` first) as one
    /// batch, applies them, then spawns each run in its own child task. Returns each firing's record LSN once
    /// durable (nil when it was dropped: the task is gone, disabled or in error, or the journal failed).
    func fire(_ firings: [Firing], missed: [RunMissed] = []) async -> [UInt64?] {
        await commit(prepare(firings, missed: missed))
    }

    /// Firings decided and their runs registered, not yet journaled.
    struct PreparedFirings {
        typealias StartedRun = (runID: String, handle: RunHandle, firing: Firing, definition: TaskDefinition)
        var events: [JournalEntry.Event]
        /// Each firing's index in `events` (nil: dropped).
        var recordIndex: [Int?]
        var started: [StartedRun]
        /// Slots of dropped firings (and of those recorded missed) that this node may hold already: a retry's,
        /// a re-run's, a catch-up's. Their claims are marked finished, or another node would take them over
        /// once this one stops or dies, and run them.
        var released: [ClaimedSlot] = []
        /// Scheduled slots skipped here by the overlap policy. Claimed in the same statement as the slots that run
        /// (and marked finished once their `run.missed` is durable), so that no other node, normally waiting out
        /// the fallback delay for them, runs them while this node's run goes on.
        var skipped: [ClaimedSlot] = []

        /// Splits the started firings by `keep`: `part` has those kept and every other record (`run.missed`),
        /// `rest` (nil when empty) the others' `run.started` records. Both keep ``recordIndex`` for every firing
        /// (nil for those in the other half), so their results merge index by index.
        func subset(_ keep: (Firing) -> Bool) -> (part: PreparedFirings, rest: PreparedFirings?) {
            let moved = Set(started.filter { !keep($0.firing) }.map(\.runID))
            guard !moved.isEmpty else { return (self, nil) }
            var part = PreparedFirings(events: [], recordIndex: [], started: started.filter { !moved.contains($0.runID) }, released: released,
                                       skipped: skipped)
            var rest = PreparedFirings(events: [], recordIndex: [], started: started.filter { moved.contains($0.runID) })
            var partIndex = [Int?](repeating: nil, count: events.count)
            var restIndex = [Int?](repeating: nil, count: events.count)
            for (index, event) in events.enumerated() {
                if case .runStarted(let start) = event, moved.contains(start.runID) {
                    restIndex[index] = rest.events.count
                    rest.events.append(event)
                } else {
                    partIndex[index] = part.events.count
                    part.events.append(event)
                }
            }
            part.recordIndex = recordIndex.map { $0.flatMap { partIndex[$0] } }
            rest.recordIndex = recordIndex.map { $0.flatMap { restIndex[$0] } }
            return (part, rest)
        }

        /// Without the skipped slots in `lost` and their `run.missed` records: another node holds those slots, so
        /// they are not this node's to record (they run there).
        func droppingSkips(_ lost: Set<ClaimedSlot>) -> PreparedFirings {
            guard !lost.isEmpty else { return self }
            var kept = self
            var keptIndex = [Int?](repeating: nil, count: events.count)
            kept.events = []
            for (index, event) in events.enumerated() {
                if case .runMissed(let missed) = event, missed.reason == .overlap, missed.count == 1,
                   lost.contains(ClaimedSlot(task: missed.task.rawValue, slot: missed.slot)) { continue }
                keptIndex[index] = kept.events.count
                kept.events.append(event)
            }
            kept.recordIndex = recordIndex.map { $0.flatMap { keptIndex[$0] } }
            kept.skipped = skipped.filter { !lost.contains($0) }
            return kept
        }
    }

    /// The synchronous half of ``fire(_:missed:)``: decides each firing against the state now and registers
    /// its run, so the next tick (or a stop) sees it before anything is journaled.
    func prepare(_ firings: [Firing], missed: [RunMissed] = []) -> PreparedFirings {
        var events = missed.map { JournalEntry.Event.runMissed($0) }
        var recordIndex = [Int?](repeating: nil, count: firings.count)
        var started: [(runID: String, handle: RunHandle, firing: Firing, definition: TaskDefinition)] = []
        var released: [ClaimedSlot] = []
        var skipped: [ClaimedSlot] = []
        for (index, firing) in firings.enumerated() {
            let name = firing.task
            // A scheduled slot is claimed after this; any other may be held here already.
            if let slot = firing.claimedSlot, firing.trigger != .schedule { released.append(slot) }
            // Checked here, at the last moment before run.started, not only when the run was planned: a catch-up,
            // re-run, retry or manual run queued earlier must not start for a task disabled or put in error since.
            // Before the task is looked up: queued work of a task deleted since is dropped with a line in the scheduler's
            // log whether a task of its name was created again or not yet (a queue's next turn comes as soon as the
            // delete is applied, its run still going being no run of the name any more).
            if let reason = firing.droppedBecause ?? firing.stamp.flatMap({ staleness(of: $0, name) }) {
                if let missed = dropped(firing, because: reason) {
                    recordIndex[index] = events.count
                    events.append(.runMissed(missed))
                }
                continue
            }
            guard let task = state.tasks[name] else { continue }
            if task.isDisabled || task.isError { continue }
            var counted = true
            if firing.trigger != .manual, task.definition.policy.overlap == .skip, hasRunsGoing(name, at: firing.fireAtMs) {
                guard let slot = firing.slot else { continue }
                if cluster != nil, !hasClaimedRuns(name, claimedBy: firing.fireAtMs) {
                    // The task's only runs here are firings still waiting for their claims (or won after this slot
                    // came due). Under a database stalled for seconds every node had one, skipped the task's next
                    // slots as overlaps, and those ran nowhere; so this one waits for its claim too, uncounted, and
                    // counts once won (two slots of the task may then start at once: each slot running once comes
                    // first).
                    counted = false
                } else {
                    recordIndex[index] = events.count
                    events.append(.runMissed(RunMissed(task: name, slot: slot, count: 1, reason: .overlap)))
                    if cluster != nil, firing.trigger == .schedule { skipped.append(ClaimedSlot(task: name.rawValue, slot: slot)) }
                    continue
                }
            }
            let runID = runIDs.next()
            let handle = RunHandle()
            // Registered before the await: a stop or shutdown during the append finds it (and a second firing of
            // a skip task in this batch sees it).
            let awaitsClaim = cluster != nil && firing.slot != nil
            if firing.trigger == .manual { manualStartsUnapplied[name, default: 0] += 1 }
            registerRun(runID, LiveRun(task: name, handle: handle, work: nil, counted: counted, claimedAtMs: awaitsClaim ? nil : clock.nowMilliseconds(),
                                        stamp: stamp(of: name), graceSeconds: task.definition.policy.graceSeconds))
            recordIndex[index] = events.count
            events.append(.runStarted(RunStart(runID: runID, task: name, slot: firing.slot, attempt: firing.attempt, trigger: firing.trigger,
                                               interruptions: firing.interruptions)))
            started.append((runID, handle, firing, task.definition))
            if firing.slot != nil, firing.trigger != .schedule { released.removeLast() }  // it runs
        }
        return PreparedFirings(events: events, recordIndex: recordIndex, started: started, released: released, skipped: skipped)
    }

    /// The asynchronous half of ``fire(_:missed:)``: one journal batch, then the spawns.
    func commit(_ prepared: PreparedFirings) async -> [UInt64?] {
        guard let cluster else { return await journalAndSpawn(prepared) }
        cluster.finished(prepared.released)
        // In a cluster: the slots of tasks this node is preferred for (and its own retries and re-runs) are claimed
        // at once, the rest after the fallback delay, when their preferred node has normally claimed them.
        let preference = slotPreference
        let now = prepared.subset { firing in
            guard firing.slot != nil, firing.trigger == .schedule || firing.trigger == .catchUp else { return true }
            return preference.prefersMe(task: firing.task.rawValue)
        }
        // While they wait, the others are no runs of their tasks here (see ``setCounted(_:_:)``).
        for run in now.rest?.started ?? [] { setCounted(run.runID, false) }
        let won = await keepClaimed(now.part, cluster)
        claimsWon(won.started.map(\.runID))
        let first = await journalAndSpawn(won)
        // The skipped slots' claims are finished once their run.missed records are durable: a crash in between
        // leaves a claim that no journal settles, which the restart runs as a slot that never began.
        if first.contains(where: { $0 != nil }) { cluster.finished(won.skipped) }
        guard let later = now.rest else { return first }
        let kept = await keepClaimed(later, cluster, preferredElsewhere: true)
        claimsWon(kept.started.map(\.runID))
        let second = await journalAndSpawn(kept)
        return zip(first, second).map { $0 ?? $1 }
    }

    /// Journals the firings as one batch, then begins the runs. Those the timer loop took within the firing lead
    /// go to the spawn server at once, dated at their slots (``datesStarts``); with a clock of the tests' or no
    /// processes to spawn, they wait for their slots in ``startsAwaitingSlot`` instead.
    private func journalAndSpawn(_ prepared: PreparedFirings) async -> [UInt64?] {
        let (events, recordIndex, started) = (prepared.events, prepared.recordIndex, prepared.started)
        guard !events.isEmpty else { return recordIndex.map { _ in nil } }
        guard let lsns = try? await record(entries: Self.dated(events, for: started, now: clock.nowMilliseconds())) else {
            for run in started { unregisterRun(run.runID) }
            return recordIndex.map { _ in nil }
        }
        let result = recordIndex.map { $0.map { lsns.lowerBound + UInt64($0) } }
        // A batch made durable by the same sync as an earlier one is applied after it. If that may be a disable or a
        // delete, wait for it, so the state looked at below holds every record before these. (Always waiting made
        // every tick wait for the one before it: start p50 +30 % at 10,000 firings a second.)
        if stoppingCommandsUnapplied > 0 { await waitUntilApplied(lsns.upperBound) }
        guard phase == .running else {
            // The scheduler began stopping while run.started was being journaled: never spawn after that.
            await endUnbegun(started)
            return result
        }
        let now = clock.nowMilliseconds()
        // Early runs go to the spawn server dated, as many as it may still hold; the rest wait for their slots here.
        var (due, early) = (started.filter { $0.firing.fireAtMs <= now }, started.filter { $0.firing.fireAtMs > now })
        let dated = datesStarts ? min(early.count, max(0, configuration.heldStartsLimit - heldStarts)) : 0
        due += early.prefix(dated)
        early.removeFirst(dated)
        begin(due, now: now)
        awaitSlots(early)
        return result
    }

    /// A batch's records, made `now`, but each `run.started` of a run taken within the firing lead is dated at its
    /// run's moment, when it begins: the task's last start and the run's start and duration are then the process's
    /// (to within a tick), not up to a lead earlier. The `run.started` records come in the order of `started`
    /// (``prepare(_:missed:)`` appends both together and ``PreparedFirings/subset(_:)`` keeps the order), so they
    /// are paired as they come, with no lookup by run ID per firing.
    static func dated(_ events: [JournalEntry.Event], for started: [PreparedFirings.StartedRun], now: Int64) -> [JournalEntry] {
        var runs = started.makeIterator()
        return events.map { event in
            guard case .runStarted(let start) = event, let run = runs.next() else { return JournalEntry(at: now, event) }
            assert(run.runID == start.runID, "run.started records out of the order of their runs")
            return JournalEntry(at: max(now, run.firing.fireAtMs), event)
        }
    }

    /// Begins runs whose `run.started` is durable and whose slot has come, or, with dated starts, is within the
    /// lead (those of a task disabled, deleted or put in error since end as stopped; one that is so while its dated
    /// start waits is withdrawn, ``withdrawDatedStarts(of:because:)``). In a cluster, a run whose claim was won more than ``claimDeadline`` ago (the
    /// process was paused between its claim and its slot, or its batch's sync stalled) may have been taken over
    /// since, and run by the taker: its claim is checked again first (``beginIfStillClaimed(_:)``).
    func begin(_ started: [PreparedFirings.StartedRun], now: Int64, claimsChecked: Bool = false) {
        var started = started
        if cluster != nil, !claimsChecked {
            let deadline = now - Int64(Self.claimDeadline.components.seconds) * 1000
            let stale = started.filter { run in run.firing.slot != nil && (runs[run.runID]?.claimedAtMs ?? now) < deadline }
            if !stale.isEmpty {
                let staleIDs = Set(stale.map(\.runID))
                started.removeAll { staleIDs.contains($0.runID) }
                Task { await self.beginIfStillClaimed(stale) }
            }
        }
        let nowMicros = configuration.recordLateness ? clock.nowMicroseconds() : 0
        for run in started {
            let firing = run.firing
            let redefined = runs[run.runID].map { $0.stamp != stamp(of: firing.task) } ?? false
            if let reason = Self.reasonNotToBegin(state.tasks[firing.task]) ?? (redefined ? Self.redefinedBeforeItBegan : nil) {
                // A command journaled while this batch was synced or its slot awaited (a `--disable`, a `--delete`), or
                // a failure that put the task in error: the run does not begin, and it ends as stopped. A manual run
                // too: `--run` queues nothing for such a task, and no process starts after a disable is acknowledged.
                endStopped(run, message: reason, latenessMs: max(0, now - firing.fireAtMs))
                continue
            }
            // A dated start is sampled when the spawn server has made it (``execute(_:held:)``).
            if configuration.recordLateness, !datesStarts { lateness.start.append(nowMicros - TimeArithmetic.product(firing.fireAtMs, 1000)) }
            let held = datesStarts && firing.fireAtMs > now
            if held { heldStarts += 1 }
            runs[run.runID]?.work = Task(priority: .medium) {  // below the timer loop's (see `start`)
                await self.execute(run, held: held)
            }
        }
    }

    /// Ends runs whose `run.started` is durable and that will never begin (the scheduler is stopping). Each end is
    /// dated no earlier than its `run.started` (its moment, ``dated(_:for:now:)``): a run ended unbegun lasted 0 s.
    /// No claim is marked finished: a stopped node's are taken over as never begun.
    func endUnbegun(_ started: [PreparedFirings.StartedRun], because reason: String = "the scheduler stopped") async {
        guard !started.isEmpty else { return }
        let now = clock.nowMilliseconds()
        _ = try? await record(entries: started.map { run in
            JournalEntry(at: max(now, run.firing.fireAtMs), .runFinished(RunEnd(
                runID: run.runID, task: run.firing.task, outcome: .stopped, exitCode: nil, signal: nil, durationMs: 0,
                latenessMs: nil, final: true, message: RunEnd.notBegunMessage(reason))))
        })
        for run in started { unregisterRun(run.runID) }
    }

    /// Begins the runs of `started` whose claims this node still holds. A run whose slot another node took over
    /// while this one was paused ends unbegun (the taker runs it); one whose claim cannot be checked (the database
    /// does not answer) ends unbegun too and its slot waits with those the outage keeps from being claimed.
    private func beginIfStillClaimed(_ started: [PreparedFirings.StartedRun]) async {
        guard let cluster else { return }
        note("cluster: \(started.count) runs claimed more than \(Self.claimDeadline) before their start (was the process paused?); "
             + "checking their claims again")
        let held = await cluster.claim(started.compactMap(\.firing.claimedSlot))?.all
        guard phase == .running else { return await endUnbegun(started) }
        func stillHeld(_ run: PreparedFirings.StartedRun) -> Bool { run.firing.claimedSlot.map { held?.contains($0) == true } ?? true }
        let (kept, lost) = (started.filter(stillHeld), started.filter { !stillHeld($0) })
        if !lost.isEmpty {
            await endUnbegun(lost, because: held == nil ? "its claim could not be checked after a pause (the database did not answer)"
                                                        : "its slot was taken over by another node while this one was paused")
            if held == nil {
                for run in lost { rememberUnclaimed(run.firing, afresh: false) }
            }
        }
        begin(kept, now: clock.nowMilliseconds(), claimsChecked: true)
    }

    /// The end of a run taken for a definition its task no longer has: it would run the old command after the new one
    /// was acknowledged.
    static let redefinedBeforeItBegan = RunEnd.notBegunMessage("the task was redefined")

    /// Why a run whose `run.started` is durable must not begin, from its task's state now (nil: it begins).
    static func reasonNotToBegin(_ task: TaskState?) -> String? {
        guard let task else { return RunEnd.notBegunMessage("the task was deleted") }
        if task.isDisabled { return RunEnd.notBegunMessage("the task was disabled") }
        if task.isError { return RunEnd.notBegunMessage("the task was in error") }
        return nil
    }

    /// In a cluster, claims the batch's slots in one statement (those skipped by the overlap policy too) and drops
    /// the firings and skips of slots another node holds (it runs them), and the firings of slots that could not
    /// be claimed (the database is unreachable: this node starts no slot; its skips are still recorded, unclaimed).
    /// Manual runs (`--run`) have no slot and start on the node that took the command. A stopping node claims
    /// nothing more: the other nodes claim those slots as usual. Slots `preferredElsewhere` are claimed after the
    /// fallback delay, together with those of other ticks (see ``claimAfterFallbackDelay(_:)``).
    ///
    /// The firing of a slot claimed afresh (``Firing/claimsAfresh``; a skip is one) that this node holds because it
    /// took the slot over from another is dropped too: the takeover queued the slot's run.
    private func keepClaimed(_ prepared: PreparedFirings, _ cluster: ClusterLink, preferredElsewhere: Bool = false) async -> PreparedFirings {
        let slots = prepared.started.compactMap(\.firing.claimedSlot) + prepared.skipped
        guard !slots.isEmpty else { return prepared }
        let answer = preferredElsewhere ? await claimAfterFallbackDelay(slots) : await claim(slots, cluster)
        guard let answer else {
            // The database failed: no slot starts now; they are claimed again once it answers (``retryUnclaimedSlots()``).
            var kept = prepared.subset { $0.slot == nil }
            for run in kept.rest?.started ?? [] {
                unregisterRun(run.runID)
                rememberUnclaimed(run.firing, afresh: run.firing.claimsAfresh)
            }
            kept.part.skipped = []
            return kept.part
        }
        var held = answer.all
        if !answer.takenOver.isEmpty {  // rare: a takeover's own runs, or one made while this claim was on its way
            let afresh = Set(prepared.started.filter(\.firing.claimsAfresh).compactMap(\.firing.claimedSlot) + prepared.skipped)
            held.subtract(answer.takenOver.intersection(afresh))
        }
        guard held.count < slots.count else { return prepared }
        let kept = prepared.subset { firing in firing.claimedSlot.map { held.contains($0) } ?? true }
        for run in kept.rest?.started ?? [] { unregisterRun(run.runID) }
        let lostSkips = Set(prepared.skipped).subtracting(held)
        slotsHeldElsewhere += slots.count - answer.all.count
        return kept.part.droppingSkips(lostSkips)
    }

    /// Claims `slots` now (nil when the database failed). Slots `lookUpFirst` are normally held by their preferred
    /// node already, and are looked up before they are claimed (see ``ClusterLink/claim(_:lookUpFirst:)``).
    private func claim(_ slots: [ClaimedSlot], _ cluster: ClusterLink, lookUpFirst: Bool = false) async -> HeldSlots? {
        let asked = ContinuousClock.now
        var answer = phase == .running ? await cluster.claim(slots, lookUpFirst: lookUpFirst) : HeldSlots()
        if let held = answer?.all, !held.isEmpty, ContinuousClock.now - asked > Self.claimDeadline {
            // Paused past the deadline: another node may have taken these over since; keep only what is still ours.
            note("cluster: a claim took \(ContinuousClock.now - asked) (was the process paused?); checking it again before any run starts")
            answer = await cluster.claim(Array(held)).map { $0.intersection(held) }
        }
        return answer
    }

    /// Slots preferred for another node, claimed here once ``SlotPreference/fallbackDelay`` has passed (their
    /// preferred node has normally claimed them by then; this covers one that died or stopped). Waiting ones go
    /// together: one lookup statement at most every ``fallbackClaimInterval``, for all ticks whose delay is
    /// over, where a statement per tick made two thirds of a three-node cluster's statements (each node looks up
    /// the slots of the other two) and a timer per tick.
    private func claimAfterFallbackDelay(_ slots: [ClaimedSlot]) async -> HeldSlots? {
        await withCheckedContinuation { reply in
            fallbackClaims.append(FallbackClaim(due: .now + SlotPreference.fallbackDelay, slots: slots, reply: reply))
            guard !fallbackClaimsServed else { return }
            fallbackClaimsServed = true
            Task { await self.claimFallbacks() }
        }
    }

    /// Serves ``fallbackClaims`` until none waits.
    private func claimFallbacks() async {
        var lastStatement = ContinuousClock.now - Self.fallbackClaimInterval
        while let earliest = fallbackClaims.map(\.due).min() {
            try? await Task.sleep(until: max(earliest, lastStatement + Self.fallbackClaimInterval), clock: .continuous)
            lastStatement = .now
            let due = fallbackClaims.filter { $0.due <= lastStatement }
            fallbackClaims.removeAll { $0.due <= lastStatement }
            guard !due.isEmpty else { continue }
            let answer: HeldSlots? = if let cluster { await claim(due.flatMap(\.slots), cluster, lookUpFirst: true) } else { HeldSlots() }
            for waiting in due { waiting.reply.resume(returning: answer.map { $0.intersection(waiting.slots) }) }
        }
        fallbackClaimsServed = false
    }

    /// A run that was not begun ends as stopped with `message`.
    private func endStopped(_ run: PreparedFirings.StartedRun, message: String, latenessMs: Int64) {
        let firing = run.firing
        finish(runID: run.runID, name: firing.task, result: .init(outcome: .stopped, status: nil, durationMs: 0, message: message),
               latenessMs: latenessMs, slot: firing.slot, fireAtMs: firing.fireAtMs, attempt: firing.attempt, interruptions: firing.interruptions,
               definition: run.definition)
    }

    /// Runs the attempt: its start (dated at its slot when `held`: counted in ``heldStarts`` until the helper
    /// answers), then its end.
    private func execute(_ run: PreparedFirings.StartedRun, held: Bool) async {
        let (runID, definition, firing) = (run.runID, run.definition, run.firing)
        let (name, slot, fireAtMs, attempt, interruptions) = (definition.name, firing.slot, firing.fireAtMs, firing.attempt, firing.interruptions)
        guard configuration.spawnProcesses else {
            let latenessMs = max(0, clock.nowMilliseconds() - fireAtMs)
            configuration.metrics?.runStarted(latenessMilliseconds: latenessMs)
            finish(runID: runID, name: name, result: .init(outcome: .succeeded, status: .exited(0), durationMs: 0, message: nil),
                   latenessMs: latenessMs, slot: slot, fireAtMs: fireAtMs, attempt: attempt, interruptions: interruptions, definition: definition)
            return
        }
        let taskLog = LogFile(task: name, workspace: configuration.workspace, settings: configuration.settings)
        // Rotated at a higher size when other runs of the task still write the log (TaskLogDescriptors.busyRotationFactor).
        let fd: Int32
        do {
            fd = try taskLogs.checkOut(taskLog, task: name, othersWriting: (activeRunCounts[name] ?? 0) > 1) { problem in
                note("task \(name): \(problem)")
            }
        } catch {
            if held { heldStarts -= 1 }
            // The file and the reason (a full disk, too many open files, a folder in the way): "cannot open the task log" alone
            // left the owner to guess.
            finish(runID: runID, name: name, result: .couldNotStart(error),
                   latenessMs: max(0, clock.nowMilliseconds() - fireAtMs), slot: slot, fireAtMs: fireAtMs, attempt: attempt,
                   interruptions: interruptions, definition: definition)
            return
        }
        let now = clock.nowMilliseconds()
        // Mistakes in the task's `.env` are said where its owner looks, once per content of the file (restarts included).
        var environment = EnvironmentBlock()
        var refusal: (any Error)?
        do {
            // Its folder, `.env` and program are run as the owner: not when another user could have put them there or
            // written them (the `.env` is checked as it is read).
            try configuration.workspace.checkFolders(downTo: definition.directory)
            try configuration.workspace.checkProgram(ExecPlan(definition.action).program, runIn: definition.directory)
            environment = try environments.block(forTaskDirectory: definition.directory, warnedRecord: taskLog.dotEnvWarnedPath) { warning in
                LogFile.write(fd, "\(ISO8601.string(fromMilliseconds: now)) [keiji] warning: \(warning)\n")
            }
            // A dated run's line is written as it is sent, dated at its slot: it comes before anything the run writes.
            LogFile.write(fd, "\(ISO8601.string(fromMilliseconds: max(now, fireAtMs))) [keiji] run \(runID) started (attempt \(attempt)\(slot.map { ", slot \(ISO8601.string(fromSeconds: $0))" } ?? ""))\n")
        } catch {
            refusal = error
        }
        let executor = RunExecutor(definition: definition, runID: runID, slot: slot, logDescriptor: fd, environment: environment,
                                   errorFile: runErrorFiles?.path(for: runID), node: configuration.settings.nodeName)
        let result: RunExecutor.Result
        let latenessMs: Int64
        var started: SpawnServer.Run?
        // A `.env` the run cannot have, or a folder, `.env` or program others may write: it ends as one the helper could not start, and
        // is never sent.
        let beginning = if let refusal { RunExecutor.Beginning.failed(.couldNotStart(refusal)) }
            else { await executor.begin(handle: run.handle, notBeforeMilliseconds: held ? fireAtMs : nil) }
        if held { heldStarts -= 1 }
        switch beginning {
        case .started(let process):
            // The spawn server reads the wall clock as it starts the run: a dated run's lateness is its own.
            let startedMicros = datesStarts ? process.startedAtMicroseconds : clock.nowMicroseconds()
            latenessMs = max(0, startedMicros / 1000 - fireAtMs)
            if datesStarts, configuration.recordLateness { lateness.start.append(startedMicros - TimeArithmetic.product(fireAtMs, 1000)) }
            configuration.metrics?.runStarted(latenessMilliseconds: latenessMs)
            result = await executor.wait(for: process, handle: run.handle)
            started = process
        case .failed(let failure):
            latenessMs = max(0, clock.nowMilliseconds() - fireAtMs)
            configuration.metrics?.runStarted(latenessMilliseconds: latenessMs)
            result = failure
        case .notBegun(let why):
            LogFile.write(fd, "\(ISO8601.string(fromMilliseconds: max(clock.nowMilliseconds(), fireAtMs))) [keiji] run \(runID) withdrawn: \(why.message)\n")
            taskLogs.checkIn(fd)
            switch why {
            case .stop(let reason): await endUnbegun([run], because: reason)
            case .task(let message): endStopped(run, message: message, latenessMs: max(0, clock.nowMilliseconds() - fireAtMs))
            }
            return
        }
        // Output that did not end in a newline would run on into this line.
        let lineBreak = LogFile.endsInNewline(fd) ? "" : "\n"
        let endedAt = ISO8601.string(fromMilliseconds: clock.nowMilliseconds())
        let warning = result.warning.map { "\(endedAt) [keiji] warning: run \(runID): \($0)\n" } ?? ""
        LogFile.write(fd, "\(lineBreak)\(warning)\(endedAt) [keiji] run \(runID) \(RunResultText.text(result.outcome)) after \(result.durationMs) ms\(result.message.map { ": \($0)" } ?? "")\n")
        // Processes the run left outside its group write on into this file through the helper: it stays checked out,
        // so a rotation leaves it plain until they stop (compressed under them, all they wrote later was lost).
        if let started, executor.server.outputIsOpen(started) {
            let (taskLogs, server) = (taskLogs, executor.server)
            Task {
                await server.outputEnd(of: started)
                taskLogs.checkIn(fd)
            }
        } else {
            taskLogs.checkIn(fd)
        }
        finish(runID: runID, name: name, result: result, latenessMs: latenessMs, slot: slot, fireAtMs: fireAtMs, attempt: attempt,
               interruptions: interruptions, definition: definition)
    }

    /// Withdraws the dated starts of `name` that the spawn server still holds: its task was disabled, deleted or
    /// put in error while they waited for their slots, and they end as stopped (as ``begin(_:now:claimsChecked:)``
    /// ends one that is so when it is sent). A start being made as this is asked goes on, as a run whose slot came
    /// before the command.
    func withdrawDatedStarts(of name: TaskName, because message: String) {
        for run in runs.values where run.task == name && run.work != nil && !run.detached {
            run.handle.cancelStart(.task(message: message))
        }
    }

    /// A run that has ended, its `run.finished` not yet durable.
    struct EndedRun {
        var event: JournalEntry.Event
        var runID: String
        var name: TaskName
        var outcome: RunOutcome
        var durationMs: Int64
        var slot: Int64?
        var attempt: Int
        var interruptions: Int?
        var definition: TaskDefinition
        var stamp: DefinitionStamp?
        var willRetry: Bool
        /// The earliest its end may be dated: its moment, at or before which its `run.started` is dated. A run that failed
        /// before its moment (its log could not be opened) was dated earlier than its start, and showed a negative duration.
        var notBeforeMs: Int64

        /// Its slot's claim (nil for a manual run).
        var claimedSlot: ClaimedSlot? { slot.map { ClaimedSlot(task: name.rawValue, slot: $0) } }

        /// The same end, with no retry to follow.
        func final() -> EndedRun {
            var ended = self
            ended.willRetry = false
            if case .runFinished(var end) = event {
                end.final = true
                ended.event = .runFinished(end)
            }
            return ended
        }
    }

    /// Whether the retry a failed run of `stamp` would owe is dropped because its task was redefined (or deleted) since it
    /// began; a redefined task's log says so.
    func retryDropped(runID: String, name: TaskName, attempt: Int, stamp: DefinitionStamp?) -> Bool {
        guard let stamp, let reason = staleness(of: stamp, name) else { return false }
        if state.tasks[name]?.taskID == stamp.taskID { sayRetryDropped(runID: runID, name: name, attempt: attempt, because: reason) }
        return true
    }

    /// Says in the task's log that run `runID` owes no retry any more, and why: it was dropped without a word.
    private func sayRetryDropped(runID: String, name: TaskName, attempt: Int, because reason: String) {
        try? LogFile(task: name, workspace: configuration.workspace, settings: configuration.settings)
            .append("[keiji] run \(runID) is not retried (attempt \(attempt + 1) dropped): \(reason)", at: clock.nowMilliseconds())
    }

    /// Hands the run's end to the next `run.finished` batch (``flushEndedRuns()``) and returns: the run's task is
    /// done; the run stays registered (its task shows as running, and a firing's catch-up or manual run waits for
    /// it) until the record is durable, but a slot whose moment comes from now on is not its overlap.
    /// `fireAtMs`: the run's moment; its `run.started` is dated no earlier (``dated(_:for:now:)``), nor is its end.
    private func finish(runID: String, name: TaskName, result: RunExecutor.Result, latenessMs: Int64, slot: Int64?, fireAtMs: Int64, attempt: Int,
                        interruptions: Int?, definition: TaskDefinition) {
        runEnded(runID)
        let stamp = runs[runID]?.stamp
        // A retry runs the task's definition then: one redefined during this run would run a command that never had a
        // first attempt, so its failure is final (the policy now current says whether that puts the task in error).
        let owesRetry = result.outcome.isFailure && attempt <= definition.policy.retries && phase == .running
        let willRetry = owesRetry && !retryDropped(runID: runID, name: name, attempt: attempt, stamp: stamp)
        var exitCode: Int32?
        var signal: Int32?
        switch result.status {
        case .exited(let code): exitCode = code
        case .signaled(let s): signal = s
        case .waitFailed, .lost, nil: break
        }
        let event = JournalEntry.Event.runFinished(RunEnd(runID: runID, task: name, outcome: result.outcome, exitCode: exitCode, signal: signal,
                                                          durationMs: result.durationMs, latenessMs: latenessMs, final: !willRetry,
                                                          message: result.message, transient: result.transient))
        endedRuns.append(EndedRun(event: event, runID: runID, name: name, outcome: result.outcome, durationMs: result.durationMs, slot: slot,
                                  attempt: attempt, interruptions: interruptions, definition: definition, stamp: stamp, willRetry: willRetry,
                                  notBeforeMs: fireAtMs))
        if endedRuns.count == 1 { scheduleEndedRunsFlush() }
    }

    /// Journals the ends gathered so far at once after a quiet spell, else once ``SchedulerConfiguration/endedRunsInterval``
    /// has passed since the last batch: under load one batch (one sync, one hand-off to the journal's writer and
    /// back) per interval instead of one per run. A stop cancels the wait (``stop()``).
    private func scheduleEndedRunsFlush() {
        let due = lastEndedRunsFlush?.advanced(by: configuration.endedRunsInterval)
        guard phase == .running, let due, due > .now else {
            Task { await self.flushEndedRuns() }
            return
        }
        endedRunsWait = Task {
            try? await Task.sleep(until: due, clock: .continuous)
            await self.flushEndedRuns()
        }
    }

    /// What follows a run's durable end: it stops counting as running; a retry is scheduled after its backoff; a
    /// final failure puts the task in error (it waits for `keiji task --resolve`) unless it continues on error.
    func settle(_ ended: EndedRun) {
        if let metrics = configuration.metrics {
            runSeries.finished(ended.name, ended.outcome, durationMilliseconds: ended.durationMs, metrics: metrics)
        }
        let ofDeletedTask = runs[ended.runID]?.detached == true
        unregisterRun(ended.runID)
        if ofDeletedTask { return }  // a task of its name now is another task
        if ended.willRetry {
            let backoff = ended.definition.policy.retryDelaySeconds(afterAttempt: ended.attempt)
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(TimeArithmetic.milliseconds(fromSeconds: backoff)))
                await self?.retry(ended)
            }
        } else if ended.outcome.isFailure, state.tasks[ended.name]?.isError == true {
            // The error as the reducer decided it, by the policy current at the end (the run's own may be a replaced one).
            disarm(ended.name)
            // Not while stopping: a retry the stop cut short is another node's to take over, not an error of the task.
            if cluster != nil, phase == .running, let task = state.tasks[ended.name], task.isError {
                unpublishedErrors[ended.name] = JournalEntry(at: clock.nowMilliseconds(), .taskErrored(ended.name, errorText: task.errorText))
                Task { await self.pullCommands() }  // publishes it first
            }
        }
    }

    private func retry(_ ended: EndedRun) async {
        // Stopping: the claim stays unfinished, so once this node is marked stopped another takes the slot over and
        // runs it (finished here, in the stop's wait for the last runs, the slot's retry ran nowhere).
        guard phase == .running else { return }
        // A task changed since the failure (disabled, even if enabled again; resolved; saved) owes no retry: the rule
        // a restart applies (`owedRetries`), so the two never disagree.
        let failedAt = state.tasks[ended.name]?.recentRuns.last { $0.runID == ended.runID }?.finishedAt
        let redefined = retryDropped(runID: ended.runID, name: ended.name, attempt: ended.attempt, stamp: ended.stamp)
        guard !redefined, let task = state.tasks[ended.name], !task.isDisabled, let failedAt, task.updatedAt <= failedAt else {
            if !redefined, let task = state.tasks[ended.name], task.taskID == ended.stamp?.taskID {
                sayRetryDropped(runID: ended.runID, name: ended.name, attempt: ended.attempt,
                                because: task.isDisabled ? "the task was disabled" : "the task was disabled, enabled or resolved since it failed")
            }
            // No retry: the slot's claim (kept unfinished for it) is done with.
            if let cluster, let slot = ended.claimedSlot { cluster.finished([slot]) }
            return
        }
        // The retry carries the slot's interruption count: a restart during it still counts toward giving up.
        await fire(ended.name, slot: ended.slot, fireAtMs: clock.nowMilliseconds(), trigger: .retry, attempt: ended.attempt + 1,
                   interruptions: ended.interruptions)
    }
}
