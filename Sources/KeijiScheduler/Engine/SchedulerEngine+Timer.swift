import KeijiCore

extension SchedulerEngine {
    // MARK: - Arming

    /// (Re)arms `name`'s next firing: its queued manual triggers not yet taken (due now), else its next slot.
    /// Called at start and after every command that changes the task; any entry armed before becomes stale. Runs
    /// in progress are not affected. A disabled task, a task in error, a one-shot that has fired and a task whose queued
    /// catch-up runs are going are left unarmed.
    func arm(_ name: TaskName) {
        disarm(name)
        guard phase == .running || phase == .created, let task = state.tasks[name], !task.isDisabled, !task.isError else { return }
        if task.pendingTriggers > manualStartsUnapplied[name, default: 0] {
            push(name, fireAtMs: clock.nowMilliseconds(), slot: TimerEntry.manual)
            return
        }
        guard !catchingUp.contains(name) else { return }  // armed again once its catch-up runs are done
        let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
        guard let slot = calculator.nextSlot(after: cursor(of: name, task)) else { return }  // a one-shot that has fired
        push(name, fireAtMs: task.fireTimeMilliseconds(slot: slot, calculator: calculator), slot: slot)
    }

    /// Forgets `name`'s armed firing (its heap entry turns stale).
    func disarm(_ name: TaskName) {
        guard armed.removeValue(forKey: name) != nil else { return }
        staleTimers += 1
        if staleTimers > max(1024, armed.count) {
            timers.removeAll { armed[$0.task] != $0.generation }
            staleTimers = 0
        }
    }

    /// Where a task's next slot counts from: the later of what the timer fired and what the journal says.
    func cursor(of name: TaskName, _ task: TaskState) -> Int64 {
        max(firedSlots[name] ?? Int64.min, task.lastSlot ?? task.anchor)
    }

    private func push(_ name: TaskName, fireAtMs: Int64, slot: Int64) {
        lastGeneration &+= 1
        armed[name] = lastGeneration
        timers.push(TimerEntry(fireAtMs: fireAtMs, slot: slot, generation: lastGeneration, armedLate: fireAtMs < clock.nowMilliseconds(), task: name))
        if takenAt(fireAtMs) < timerSleepsUntil { timerSleep?.cancel() }
    }

    func stopTimers() {
        timerLoop?.cancel()
        timerSleep?.cancel()
        timerLoop = nil
        armed.removeAll()
        timers = TimerHeap()
        firingsAwaitingMoment = []
        stallsLookedUp = []
        staleTimers = 0
    }

    // MARK: - The timer loop

    /// The one loop that fires every task: it pops every entry due within the firing lead, decides each firing,
    /// journals them as one batch, re-arms those tasks, and sleeps until the next entry's lead begins. Each run
    /// then starts at its slot, once its batch is durable (``SchedulerConfiguration/firingLeadMilliseconds``):
    /// dated in the spawn server (``datesStarts``), or begun by this loop.
    func runTimers() async {
        // The last wake that fired something, and how many: after a busy one, the next waits for the busy tick.
        var lastTick = Int64.min
        var lastTickFired = 0
        // Busy is a rate: a wake takes the firings of 1 + window milliseconds.
        let busyTickFirings = configuration.busyTickFirings * Int(TimeArithmetic.sum(configuration.firingWindowMilliseconds, 1))
        var now = clock.nowMilliseconds()
        while !Task.isCancelled, phase == .running {
            beginRunsAtTheirSlots(now: now)
            var due = firingsAtTheirMoment(now: now)
            let window = TimeArithmetic.sum(now, configuration.firingWindowMilliseconds)
            let taking = timers.min.map { takenAt($0.fireAtMs) <= now } ?? false
            while taking, let top = timers.min, takenAt(top.fireAtMs) <= window {
                timers.popMin()
                if take(top) { due.append(top) }
            }
            if !due.isEmpty {
                (lastTick, lastTickFired) = (now, due.count)
                fireDue(due, now: now)
                await Task.yield()  // let commands, finishing runs and the batches just launched in
            }
            // The next firing's lead or the next awaiting slot, whichever comes first; after a busy wake, not before
            // the busy tick (which then begins the runs whose slots came meanwhile).
            let next = min(timers.min.map { takenAt($0.fireAtMs) } ?? Int64.max,
                           startsAwaitingSlot.first?.firing.fireAtMs ?? Int64.max,
                           firingsAwaitingMoment.lazy.map(\.fireAtMs).min() ?? Int64.max)
            let tick = lastTickFired >= busyTickFirings ? lastTick &+ configuration.busyTickMilliseconds : Int64.min
            now = clock.nowMilliseconds()
            if max(next, tick) > now {
                await sleepUntil(max(next, tick), now: now, busyTick: tick > next)
                now = clock.nowMilliseconds()
            }
        }
    }

    /// When the loop takes a firing due at `fireAtMs`: the firing lead before it.
    private func takenAt(_ fireAtMs: Int64) -> Int64 {
        TimeArithmetic.sum(fireAtMs, -configuration.firingLeadMilliseconds)
    }

    /// Sleeps until `deadline` (at most 30 s at a time), or until `push` arms something earlier.
    private func sleepUntil(_ deadline: Int64, now: Int64, busyTick: Bool = false) async {
        let until = min(deadline, TimeArithmetic.sum(now, 30_000))
        (timerSleepsUntil, timerSleepIsBusyTick) = (until, busyTick)
        let clock = clock
        let sleep = Task { _ = try? await clock.sleep(untilMilliseconds: until) }
        timerSleep = sleep
        await sleep.value
        timerSleep = nil
        (timerSleepsUntil, timerSleepIsBusyTick) = (Int64.max, false)
    }

    // MARK: - Runs awaiting their slots

    /// Hands runs whose `run.started` is durable before their slot to the timer loop, which begins them then.
    /// ``startsAwaitingSlot`` stays in slot order, so each wake reads only the runs it begins (at 10,000 firings a
    /// second, a lead holds a few hundred). Batches come in slot order, so this is an append but for the rare
    /// batch that overtakes another (a manual run's, a cluster's second claim).
    func awaitSlots(_ started: [PreparedFirings.StartedRun]) {
        guard let earliest = started.lazy.map(\.firing.fireAtMs).min() else { return }
        let inOrder = zip(started, started.dropFirst()).allSatisfy { $0.firing.fireAtMs <= $1.firing.fireAtMs }
            && earliest >= startsAwaitingSlot.last?.firing.fireAtMs ?? Int64.min
        startsAwaitingSlot += started
        if !inOrder { startsAwaitingSlot.sort { $0.firing.fireAtMs < $1.firing.fireAtMs } }
        if !timerSleepIsBusyTick, earliest < timerSleepsUntil { timerSleep?.cancel() }
    }

    /// Begins the runs awaiting a slot that has come.
    private func beginRunsAtTheirSlots(now: Int64) {
        let count = startsAwaitingSlot.firstIndex { $0.firing.fireAtMs > now } ?? startsAwaitingSlot.endIndex
        guard count > 0 else { return }
        let due = Array(startsAwaitingSlot[..<count])
        startsAwaitingSlot.removeFirst(count)
        begin(due, now: now)
    }

    /// The firings in ``firingsAwaitingMoment`` whose moment has come and that are still armed.
    private func firingsAtTheirMoment(now: Int64) -> [TimerEntry] {
        guard firingsAwaitingMoment.contains(where: { $0.fireAtMs <= now }) else { return [] }
        var due: [TimerEntry] = []
        firingsAwaitingMoment.removeAll { entry in
            guard entry.fireAtMs <= now else { return false }
            if take(entry) { due.append(entry) }  // else re-armed meanwhile (a command)
            return true
        }
        return due
    }

    /// Whether `entry` is its task's live firing; if so the task is disarmed (the caller fires it), if not the
    /// stale entry is counted off.
    private func take(_ entry: TimerEntry) -> Bool {
        guard armed[entry.task] == entry.generation else {
            staleTimers = max(0, staleTimers - 1)
            return false
        }
        armed[entry.task] = nil
        return true
    }

    /// At a stop: the runs awaiting their slots never begin, here or as dated starts in the spawn server (those
    /// end unbegun as the server gives them back; one it is starting at that moment runs, and the stop ends it).
    func endRunsAwaitingSlot() async {
        for run in runs.values { run.handle.cancelStart(.schedulerStopping) }
        let unbegun = startsAwaitingSlot
        startsAwaitingSlot = []
        await endUnbegun(unbegun)
    }

    /// Decides the firings taken in one tick and journals them as one batch; each run begins at its slot once the
    /// batch is durable (``journalAndSpawn(_:)``, ``beginRunsAtTheirSlots(now:)``). The loop does not wait for the
    /// batch to be durable (a sync can take milliseconds, more on a busy disk): the next tick's firings form the
    /// next batch meanwhile, and the journal's group commit joins batches that wait together. A slot whose successor is
    /// also due means the process did not run for a while (SIGSTOP, suspend, a clock step forward): the slots
    /// that passed follow the task's catch-up policy, the same ``CatchUpRule`` restart recovery applies.
    private func fireDue(_ due: [TimerEntry], now: Int64) {
        var firings: [Firing] = []
        var missed: [RunMissed] = []
        var rearm: [TaskName] = []
        var queued: [(TaskName, [RecoveryRun])] = []
        var stalls: [String] = []
        var arrivals: [String] = []
        var stalledInCluster: [TaskName] = []
        let nowMicros = clock.nowMicroseconds()
        for entry in due {
            let name = entry.task
            let lookedUp = !entry.isManual && stallsLookedUp.remove(name) != nil  // a manual run leaves it to the slot
            guard let task = state.tasks[name], !task.isDisabled, !task.isError else { continue }
            if configuration.recordLateness { lateness.wake.append(max(0, nowMicros - TimeArithmetic.product(takenAt(entry.fireAtMs), 1000))) }
            rearm.append(name)
            if entry.isManual {
                if task.definition.policy.overlap == .skip, hasRuns(name) {
                    // A skip task never runs twice at once: a queued manual run waits for the current one.
                    // (`--run` refuses while one runs; this covers a slot that started during the append.)
                    rearm.removeLast()
                    push(name, fireAtMs: TimeArithmetic.sum(now, 200), slot: TimerEntry.manual)
                    continue
                }
                firings.append(Firing(task: name, slot: nil, fireAtMs: now, trigger: .manual))
                continue
            }
            let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
            let nextFireAtMs = calculator.nextSlot(after: entry.slot).map { task.fireTimeMilliseconds(slot: $0, calculator: calculator) }
            // Its successor is due: the process stalled. Or the slot had passed before this node armed it (the task
            // came from another node; on any node, its catch-up runs or the start went past it) and now lies nearer its
            // successor than its own moment: a missed slot, not a late run (a catch-up `skip` task made on a stopped
            // node ran its first slot a second late so).
            let stalled = nextFireAtMs.map { $0 <= now } ?? false
            if stalled, cluster != nil, !lookedUp {
                // In a cluster the other nodes claimed this node's slots while it stalled (SIGSTOP, suspend): the
                // slots they ran are theirs, not missed here. Re-armed once the cursor is moved up to them.
                rearm.removeLast()
                stalledInCluster.append(name)
                continue
            }
            let arrivedMissed = entry.armedLate && (nextFireAtMs.map { now - entry.fireAtMs > ($0 - entry.fireAtMs) / 2 } ?? false)
            if stalled || arrivedMissed,
               let plan = CatchUpRule.plan(for: task, calculator: calculator, after: cursor(of: name, task), through: now,
                                           rerunning: false) {
                firedSlots[name] = plan.lastSlot
                if let gap = plan.missed { missed.append(gap) }
                let owed = plan.toRun.map { RecoveryRun(task: name, slot: $0, trigger: .catchUp, attempt: 1, interruptions: nil, claimsAfresh: true) }
                if task.definition.policy.overlap == .skip, hasRuns(name) {
                    // A run from before the stall is still registered: often it ended during the stall and its end
                    // is not handled yet. The catch-up runs wait for it, as they wait for each other (and as
                    // restart recovery's wait for a re-run): fired now, overlap `skip` dropped the one run owed.
                    queued.append((name, owed))
                } else if let first = owed.first {
                    firings.append(first.firing(at: now))
                    queued.append((name, Array(owed.dropFirst())))
                }
                let passed = "\(name): \(plan.total) slots passed, \(plan.toRun.count) run (catch-up \(task.definition.policy.catchUp.rawValue))"
                if entry.armedLate { arrivals.append(passed) } else { stalls.append(passed) }
                continue
            }
            if entry.fireAtMs > now, task.definition.policy.overlap == .skip, hasRuns(name) {
                // Taken within the lead while a run of the task is registered: that run may end before this slot's
                // moment, so the overlap is decided then, as it was before the lead (the slot is not a missed overlap
                // because its predecessor's end was still being journaled a few milliseconds early).
                rearm.removeLast()
                armed[name] = entry.generation
                firingsAwaitingMoment.append(entry)
                if configuration.recordLateness { lateness.wake.removeLast() }  // sampled when taken at its moment
                continue
            }
            firedSlots[name] = entry.slot
            firings.append(Firing(task: name, slot: entry.slot, fireAtMs: entry.fireAtMs, trigger: .schedule, claimsAfresh: true))
        }
        func noteSlots(_ what: String, _ tasks: [String]) {
            guard !tasks.isEmpty else { return }
            note(what + ": " + tasks.prefix(20).joined(separator: "; ") + (tasks.count > 20 ? "; and \(tasks.count - 20) more tasks" : ""))
        }
        noteSlots("late by a stall (process stopped, suspended or clock stepped)", stalls)
        // Alone, no other node has tasks: there the catch-up runs that went (or the start) kept the task unarmed.
        noteSlots(cluster == nil ? "slots that passed before the task was armed again (during its catch-up runs or the scheduler's start)"
                                 : "slots that passed before this node had the task (made on another node)", arrivals)
        if !stalledInCluster.isEmpty { Task { await self.settleStallInCluster(stalledInCluster) } }
        let prepared = prepare(firings, missed: missed)
        // Re-armed now: the next slot counts from `firedSlots`, and a manual trigger taken is not taken again
        // (``manualStartsUnapplied``), so a task with more triggers queued fires the next at once.
        for name in rearm where armed[name] == nil { arm(name) }
        queueCatchUps(queued)
        Task { _ = await commit(prepared) }  // on this actor from its first step (it captures self), as each run's task
    }

    /// Tasks a stall left behind in a cluster: each task's cursor moves up to the latest slot any node has claimed
    /// of it, then the task is armed again; what passed after that (the whole cluster stalled, or the database did
    /// not answer) follows the catch-up rule at the next firing.
    private func settleStallInCluster(_ names: [TaskName]) async {
        if let passed = await skipSlotsClaimedElsewhere(of: names) {
            note("cluster: \(passed) slots of \(names.count) tasks passed during a stall and were \(RecoveryReport.Cluster.settledElsewhere)")
        }
        guard phase == .running else { return }
        stallsLookedUp.formUnion(names)
        for name in names where armed[name] == nil { arm(name) }
    }
}
