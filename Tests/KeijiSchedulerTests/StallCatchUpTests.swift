import Foundation
import KeijiCore
import Synchronization
import Testing

@testable import KeijiScheduler

/// Wall time that a test can step forward at once (a suspend, a SIGSTOP, an NTP step, as the engine sees them),
/// and can stop until that step, so that nothing comes due between the test's look at the engine and the step.
final class SteppedClock: SchedulerClock {
    /// Microseconds added to the wall clock, and the instant the clock stands at while frozen.
    private let state = Mutex<(offset: Int64, frozenAt: Int64?)>((0, nil))

    /// Steps forward; a frozen clock goes on from the instant it stood at, plus the step.
    func step(byMilliseconds milliseconds: Int64) {
        state.withLock { state in
            if let frozenAt = state.frozenAt {
                state.offset = frozenAt + milliseconds * 1000 - WallClock().nowMicroseconds()
                state.frozenAt = nil
            } else {
                state.offset += milliseconds * 1000
            }
        }
    }

    /// Stops time until the next ``step(byMilliseconds:)``.
    func freeze() {
        state.withLock { state in
            if state.frozenAt == nil { state.frozenAt = WallClock().nowMicroseconds() + state.offset }
        }
    }

    /// Stands the clock still at `milliseconds` (until the next ``step(byMilliseconds:)``).
    func freeze(atMilliseconds milliseconds: Int64) { state.withLock { $0.frozenAt = milliseconds * 1000 } }

    func nowMicroseconds() -> Int64 { state.withLock { $0.frozenAt ?? WallClock().nowMicroseconds() + $0.offset } }
    func nowMilliseconds() -> Int64 { nowMicroseconds() / 1000 }

    /// Polls, so a step wakes a sleeper within a few milliseconds.
    func sleep(untilMilliseconds deadline: Int64) async throws {
        while nowMilliseconds() < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }
}

extension SchedulerEngine {
    /// Freezes `clock` if no run is in progress, no task has catch-up runs still queued (a slot that passed while
    /// a loaded machine started the engine is caught up at the start, and between two of those runs none is in
    /// progress), and each task's next slot, counted from where the timer stands, is more than 3 s away; in one
    /// turn of the engine, so nothing fires between the look and the freeze.
    func freezeIfQuiet(_ names: [TaskName], _ clock: SteppedClock) -> Bool {
        guard runs.isEmpty, catchingUp.isDisjoint(with: names) else { return false }
        for name in names {
            guard let task = state.tasks[name] else { return false }
            let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
            guard let next = calculator.nextSlot(after: cursor(of: name, task)),
                  task.fireTimeMilliseconds(slot: next, calculator: calculator) - clock.nowMilliseconds() > 3000 else { return false }
        }
        clock.freeze()
        return true
    }
}

/// After a stall of the running scheduler, the slots that passed follow each task's catch-up policy (the rule
/// restart recovery applies), instead of every missed slot firing back to back.
struct StallCatchUpTests {
    /// Runs started for slots strictly inside `(from, through)`, per task.
    func runsInside(_ entries: [JournalEntry], _ name: TaskName, from: Int64, through: Int64) -> [RunStart] {
        entries.startedRuns.filter { $0.task == name && ($0.slot.map { $0 > from && $0 < through } ?? false) }
    }

    func missedByStall(_ entries: [JournalEntry], _ name: TaskName) -> [RunMissed] {
        entries.missedRuns(.downtime).filter { $0.task == name }
    }

    /// Waits until no run is in progress and each task's next slot is more than 3 s away on `clock`, then freezes
    /// `clock` until the test's step, so the step cannot race a slot that comes due by itself (its run, still
    /// going when the stall is handled, would make the catch-up runs wait for it, and the slots counted here
    /// shift). Without the freeze, the seconds between this look and the step on a loaded machine were enough: a
    /// soak failed so.
    /// The look and the freeze are one turn of the engine (``SchedulerEngine/freezeIfQuiet(_:_:)``): looked at
    /// in two turns, a slot fired between them (its run still going, the next slot 10 s away) and a suite run
    /// failed so.
    func quietMoment(_ harness: SchedulerHarness, _ engine: SchedulerEngine, _ names: [TaskName], _ clock: SteppedClock) async -> Bool {
        await harness.wait { await engine.freezeIfQuiet(names, clock) }
    }

    @Test func aClockStepForwardFollowsEachTasksCatchUpPolicy() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // 10 s slots: a loaded machine can make the engine a second or two late (a real stall, handled by the
        // same rule), but not ten; so the only stall here is the 200 s step.
        let interval: Int64 = 10
        try await harness.defineOffline(try harness.commandTask("once", "true", every: Int(interval)) { $0.catchUp = .once })
        try await harness.defineOffline(try harness.commandTask("all", "true", every: Int(interval)) {
            $0.catchUp = .all
            $0.catchUpLimit = 3
        })
        try await harness.defineOffline(try harness.commandTask("skip", "true", every: Int(interval)) { $0.catchUp = .skip })
        let names = ["once", "all", "skip"].map(harness.taskName)
        let clock = SteppedClock()
        let engine = harness.engine(spawn: false, clock: clock)
        try await engine.start()
        #expect(await harness.wait {
            let finished = try harness.entries().finishedRuns
            return names.allSatisfy { name in finished.contains { $0.task == name } }
        }, "each task fires on its schedule first")
        // And those runs are over, and no slot is about to come due by itself: a run still going when the clock
        // jumps (a loaded machine can hold one back for seconds) makes the first catch-up run an overlap, which
        // `skip` rightly drops.
        #expect(await quietMoment(harness, engine, names, clock))
        let before = try harness.entries().count
        let from = clock.nowMilliseconds() / 1000
        clock.step(byMilliseconds: 20 * interval * 1000)
        let to = clock.nowMilliseconds() / 1000
        let after = { Array(try harness.entries().dropFirst(before)) }
        // The step's catch-up runs: the `runs` slots after the last one its missed record gives up. Not "up to the
        // step's instant": on a loaded machine the engine handled the stall over 3 s after the step, when one
        // more slot had passed, and that slot was rightly the newest catch-up (a soak failed so). A later stall
        // of a loaded engine catches up later slots.
        let catchUps = { (name: TaskName, runs: Int64) -> [RunStart] in
            let entries = try after()
            guard let gap = missedByStall(entries, name).first else { return [] }
            return entries.startedRuns.filter {
                $0.task == name && $0.trigger == .catchUp && $0.slot! > gap.slot && $0.slot! <= gap.slot + runs * interval
            }
        }
        #expect(await harness.wait(upTo: .seconds(120)) {
            try catchUps(names[0], 1).count >= 1 && catchUps(names[1], 3).count >= 3 && !missedByStall(try after(), names[2]).isEmpty
        }, "once: one catch-up run; all: catchUpLimit runs; skip: the slots are recorded missed")
        // Each task's schedule goes on: a slot of the stall fired one by one, or one more catch-up, would come before.
        #expect(await harness.wait {
            let started = try after().startedRuns
            return names.allSatisfy { name in started.contains { $0.task == name && $0.trigger == .schedule && $0.slot! > to } }
        }, "the schedule resumes after the step")
        await engine.stop()
        let entries = try after()
        for name in names {
            // Slots well inside the stall: never fired one by one (the limit-3 `all` runs are the last three slots).
            #expect(runsInside(entries, name, from: from + interval, through: to - 3 * interval).isEmpty,
                    "\(name): \(runsInside(entries, name, from: from + interval, through: to - 3 * interval).map(\.slot))")
            #expect(missedByStall(entries, name).reduce(0) { $0 + $1.count } >= 14, "\(name): the passed slots are one run.missed")
        }
        #expect(entries.startedRuns.filter { $0.task == names[2] && $0.trigger == .catchUp }.isEmpty, "skip never catches up")
        let log = try String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8)
        #expect(log.contains("late by a stall"), "the log says why the slots passed")
        let onceRuns = try catchUps(names[0], 1), allRuns = try catchUps(names[1], 3)
        #expect(onceRuns.count == 1, "\(onceRuns.map(\.slot))")
        #expect(allRuns.count == 3, "the three slots after the missed ones, each once: \(allRuns.map(\.slot))")
    }

    /// A stall that ends just before a slot's moment: the catch-up runs (`all`, three) go first, one after
    /// another, and the schedule resumes with the slot after the last of them, none dropped as an overlap.
    /// (On a loaded machine the engine may handle the stall after that slot's moment; then that slot is the
    /// newest catch-up run and the schedule resumes with the next. The assertions hold either way.)
    @Test func theNextSlotWaitsForTheCatchUpRuns() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let interval: Int64 = 10
        try await harness.defineOffline(try harness.commandTask("all", "true", every: Int(interval)) {
            $0.catchUp = .all
            $0.catchUpLimit = 3
        })
        let name = harness.taskName("all")
        let clock = SteppedClock()
        let engine = harness.engine(spawn: false, clock: clock)
        try await engine.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == name } })
        #expect(await quietMoment(harness, engine, [name], clock))
        let task = try #require(await engine.state.tasks[name])
        let calculator = task.scheduleCalculator(defaultTimeZone: TimeZone(identifier: "UTC")!)
        // Ten slots on, 20 ms before that slot's moment: nine slots passed, the tenth is about to fire.
        let ahead = try #require(calculator.nextSlot(after: (task.lastSlot ?? task.anchor) + 9 * interval))
        let before = try harness.entries().count
        clock.step(byMilliseconds: task.fireTimeMilliseconds(slot: ahead, calculator: calculator) - 20 - clock.nowMilliseconds())
        let after = { try harness.entries().dropFirst(before).filter { $0.taskName == name } }
        #expect(await harness.wait(upTo: .seconds(120)) {
            try after().startedRuns.contains { $0.trigger == .schedule }
        }, "the schedule resumes")
        await engine.stop()
        let entries = try after()
        let started = entries.startedRuns
        let firstScheduled = try #require(started.firstIndex { $0.trigger == .schedule })
        // The stall's catch-up runs: before the first scheduled run, three slots in a row. (If they took longer
        // than a slot on a loaded machine, the slots that passed meanwhile are a stall of their own, caught up
        // by the same rule: more catch-up runs, after these three.)
        let catchUps = started[..<firstScheduled].filter { $0.trigger == .catchUp }.compactMap(\.slot)
        #expect(started[..<firstScheduled].allSatisfy { $0.trigger == .catchUp }, "catch-ups first: \(started.map(\.trigger))")
        #expect(catchUps.count >= 3 && catchUps.last.map { $0 >= ahead - interval } == true, "\(catchUps)")
        #expect(Array(catchUps.prefix(3)) == catchUps.first.map { first in (0..<3).map { first + Int64($0) * interval } }, "three slots in a row: \(catchUps)")
        let overlaps = entries.missedRuns(.overlap)
        #expect(overlaps.isEmpty, "nothing dropped as an overlap: \(overlaps); started: \(started.map { "\($0.trigger) \($0.slot ?? 0)" })")
        #expect(started[firstScheduled].slot.map { slot in catchUps.allSatisfy { $0 < slot } } == true,
                "the schedule resumes after the catch-ups")
    }

    /// A stall caught up under `catch-up all` by runs that take longer than the interval: the slots that came while
    /// the catch-up runs went are missed as overlaps, the latest fires late, and the schedule resumes. They were
    /// caught up again, each round owing the next: the task never left catch-up (a user's find: every four slots,
    /// three catch-up runs and one missed, for as long as it ran).
    @Test func catchUpAllEndsWhenItsRunsOutlastTheInterval() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("long", "sleep 1.2", every: 1) {
            $0.catchUp = .all
            $0.catchUpLimit = 3
        })
        let name = harness.taskName("long")
        let clock = SteppedClock()
        let engine = harness.engine(clock: clock)
        try await engine.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == name } })
        let before = try harness.entries().count
        clock.step(byMilliseconds: 8_000)
        let after = { try harness.entries().dropFirst(before).filter { $0.taskName == name } }
        let resumed = await harness.wait(upTo: .seconds(90)) { try after().startedRuns.filter { $0.trigger == .schedule }.count >= 2 }
        await engine.stop()
        let triggers = try after().startedRuns.map(\.trigger)
        #expect(resumed, "the schedule resumes: \(triggers)")
        // The stall's three and the slot due as they ended; on a loaded machine the engine's own lateness past a slot
        // is a stall too, caught up by the same rule (at most three a stall): seven once, in a suite beside a soak.
        // Caught up round after round instead, the schedule never resumed (75 catch-up runs in 90 s).
        let catchUps = try after().startedRuns.filter { $0.trigger == .catchUp }.count
        #expect((1...12).contains(catchUps), "\(triggers)")
    }

    /// A run still going when a stall ends (a SIGSTOP'd scheduler's run often ended during the stop, its end not
    /// yet handled): the catch-up run owed waits for it and then runs, instead of overlap `skip` dropping it.
    @Test func aCatchUpWaitsForARunStillGoingWhenTheStallEnds() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // The run lasts until the test removes `hold`, so it is surely going when the stall is handled.
        let hold = harness.home + "/hold"
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        // A minute apart, and the clock stepped to the first slot: on a loaded machine the next slot must not come by
        // itself while the run holds (it would rightly be an overlap).
        let interval: Int64 = 60
        try await harness.defineOffline(try harness.commandTask("long", "while [ -e '\(hold)' ]; do sleep 0.05; done", every: Int(interval)) {
            $0.catchUp = .once
            $0.overlap = .skip
        })
        let name = harness.taskName("long")
        let clock = SteppedClock()
        clock.freeze()  // until the first slot: a late start must not let it come by itself (see FiringLeadTests)
        let engine = harness.engine(spawn: true, clock: clock)
        try await engine.start()
        let firstSlot = try #require(await engine.nextFireMilliseconds(name))
        clock.step(byMilliseconds: max(0, firstSlot - clock.nowMilliseconds()))
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == name } }, "the first slot runs")
        let first = try #require(try harness.entries().startedRuns.first { $0.task == name })
        let before = try harness.entries().count
        clock.step(byMilliseconds: 20 * interval * 1000)
        let after = { Array(try harness.entries().dropFirst(before)).filter { $0.taskName == name } }
        #expect(await harness.wait { !missedByStall(try after(), name).isEmpty }, "the stall is handled while the run goes on")
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { try after().startedRuns.contains { $0.trigger == .catchUp } }, "the catch-up runs once the run has ended")
        await engine.stop()
        let entries = try after()
        let overlaps = entries.missedRuns(.overlap).map(\.slot)
        #expect(overlaps.isEmpty, "nothing dropped as an overlap: \(overlaps)")
        let firstEnd = try #require(entries.firstIndex { if case .runFinished(let end) = $0.event { end.runID == first.runID } else { false } })
        let catchUp = try #require(entries.firstIndex { if case .runStarted(let start) = $0.event { start.trigger == .catchUp } else { false } })
        #expect(firstEnd < catchUp, "the catch-up starts after the run that was going has ended")
        #expect(entries.startedRuns.filter { $0.trigger == .catchUp }.count == 1, "catch-up once: \(entries.startedRuns.map(\.slot))")
    }

    /// A task that reaches this node after its first slot passed (made on another node of a cluster, while no
    /// node ran): a slot that now lies nearer its successor than its own moment follows the task's catch-up
    /// policy (`skip`: recorded missed, not run); one that passed a moment ago still runs, late. This engine has no
    /// cluster, so its log does not say the task came from another node (on a lone node, a task is armed late only
    /// after its catch-up runs or at the start, and it said "made on another node" there): ClusterTests checks a
    /// node's wording.
    @Test func aSlotThatPassedBeforeTheTaskArrivedFollowsTheCatchUpPolicy() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let clock = SteppedClock()
        let engine = harness.engine(spawn: false, clock: clock)
        try await engine.start()
        // Time stands still from here: no slot comes due by itself, and the lateness below is exact.
        clock.freeze()
        let now = clock.nowMilliseconds()
        // 10 s slots counted from each save's moment: `long-ago`'s first slot passed 7 s ago (its successor is
        // 3 s ahead), `just-now`'s 2 s ago (its successor 8 s ahead).
        let longAgo = try harness.commandTask("long-ago", "true", every: 10) { $0.catchUp = .skip }
        let justNow = try harness.commandTask("just-now", "true", every: 10) { $0.catchUp = .skip }
        for (definition, savedAt) in [(longAgo, now - 17_000), (justNow, now - 12_000)] {
            _ = try await engine.applyCommand(JournalEntry(at: savedAt, .taskSaved(definition, taskID: UUID().uuidString.lowercased())))
        }
        let longAgoSlot = (now - 17_000) / 1000 + 10
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == justNow.name } },
                "the slot that passed 2 s ago runs")
        let journal = { ((try? harness.entries()) ?? []).map { String(decoding: (try? $0.jsonLine()) ?? [], as: UTF8.self) } }
        #expect(await harness.wait { missedByStall(try harness.entries(), longAgo.name).contains { $0.slot == longAgoSlot && $0.count == 1 } },
                "the slot that passed 7 s ago is missed: \(journal())")
        await engine.stop()
        #expect(try harness.entries().startedRuns.filter { $0.task == longAgo.name }.isEmpty)
        let log = try String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8)
        #expect(log.contains("slots that passed before the task was armed again (during its catch-up runs or the scheduler's start): long-ago: 1 slots passed, 0 run (catch-up skip)"), "\(log)")
        #expect(!log.contains("made on another node"), "\(log)")
    }

    /// SIGSTOP of the real keiji-scheduler for a few seconds, then SIGCONT: one catch-up run (policy `once`),
    /// the other slots one `run.missed`, and the schedule goes on.
    @Test func aStoppedSchedulerCatchesUpOnceAfterSIGCONT() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("ticker", "true") { $0.catchUp = .once })
        let name = harness.taskName("ticker")
        let crashes = CrashRecoveryTests()
        let scheduler = try crashes.launch(harness)
        defer { if scheduler.isRunning { crashes.killHard(scheduler) } }
        #expect(await harness.wait { try harness.entries().finishedRuns.filter { $0.task == name }.count >= 2 })
        // Read after the signal: read before it, a test thread descheduled in between for a second would count
        // a slot that ran before the stop as one inside it.
        kill(scheduler.processIdentifier, SIGSTOP)
        let stoppedAt = Int64(Date().timeIntervalSince1970)
        try await Task.sleep(for: .seconds(7))
        let resumedAt = Int64(Date().timeIntervalSince1970)
        kill(scheduler.processIdentifier, SIGCONT)
        let resumed = await harness.wait {
            let entries = try harness.entries()
            return entries.startedRuns.contains { $0.task == name && $0.trigger == .catchUp && $0.slot! >= resumedAt - 1 }
                && entries.startedRuns.contains { $0.task == name && $0.trigger == .schedule && $0.slot! > resumedAt }
        }
        // On failure, what the journal holds since the stop (one failure under a heavy load left no trace of why).
        let since = ((try? harness.entries()) ?? []).filter { $0.at >= (stoppedAt - 1) * 1000 }.map { String(decoding: (try? $0.jsonLine()) ?? [], as: UTF8.self) }
        #expect(resumed, "one catch-up run, then the schedule goes on; stopped at \(stoppedAt), resumed at \(resumedAt); since: \(since)")
        kill(scheduler.processIdentifier, SIGTERM)
        scheduler.waitUntilExit()
        let entries = try harness.entries()
        // A run.started journaled just before the stop may finish its append after it: slot stoppedAt + 1 at most.
        let inside = runsInside(entries, name, from: stoppedAt + 1, through: resumedAt - 1)
        #expect(inside.isEmpty, "no slot of the stall fired one by one: \(inside.map(\.slot))")
        #expect(missedByStall(entries, name).reduce(0) { $0 + $1.count } >= 4, "the stalled slots are recorded missed")
    }
}
