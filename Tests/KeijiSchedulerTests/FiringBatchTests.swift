import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// Under load the scheduler journals firings and ends in batches rather than one by one: a wake that takes a firing
/// also takes those whose leads begin within the firing window, and the ends of runs after the first are gathered
/// for the ended-runs interval. Both are stretched here (a window of minutes, an interval of an hour) so that what
/// is and is not journaled is a state to look at, not a race.
struct FiringBatchTests {
    /// Two tasks' slots a few milliseconds apart, every 60 s: when the first slot's lead begins, the second (whose
    /// lead has not begun) is taken with it when the window covers it, and not when there is no window.
    @Test(arguments: [true, false]) func aWakeTakesTheFiringsWhoseLeadsBeginWithinTheWindow(window: Bool) async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("a", "true", every: 60))
        try await harness.defineOffline(try harness.commandTask("b", "true", every: 60))
        let clock = SteppedClock()
        clock.freeze()
        let lead: Int64 = 2000
        let engine = harness.engine(spawn: true, clock: clock, firingLeadMilliseconds: lead, firingWindowMilliseconds: window ? 120_000 : 0)
        try await engine.start()
        let nexts = [try #require(await engine.nextFireMilliseconds(harness.taskName("a"))),
                     try #require(await engine.nextFireMilliseconds(harness.taskName("b")))]
        let (first, second) = (nexts.min()!, nexts.max()!)
        try #require(second > first && first - lead > clock.nowMilliseconds(), "slots \(nexts), now \(clock.nowMilliseconds())")
        #expect(await engine.runsAwaitingSlot == 0)
        clock.freeze(atMilliseconds: first - lead)  // the first slot's lead begins; the second's has not
        let taken = window ? 2 : 1
        #expect(await harness.wait { await engine.timerSleeps(withRunsAwaitingSlot: taken) }, "the loop sleeps after the wake")
        let awaiting = await engine.runsAwaitingSlot
        #expect(awaiting == taken, "no more taken while the clock stands still")
        #expect(try harness.entries().startedRuns.count == taken)
        await engine.stop()
    }

    /// With an interval of an hour: the first run's end is journaled at once (nothing was journaled before it); the
    /// second's waits after its process has exited, and the run still counts as running; a stop journals it without
    /// waiting out the hour. Two `--run`s of a task whose first slot is an hour away: a slot of its own due meanwhile
    /// would run as well (a run whose process has ended is no overlap of it), and the counts would depend on timing.
    @Test func endsAfterTheFirstWaitForTheIntervalAndAStopJournalsThem() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let ran = harness.home + "/ran"
        try await harness.defineOffline(try harness.commandTask("tick", "echo \"$KEIJI_RUN_ID\" >> '\(ran)'", every: 3600))
        let engine = harness.engine(spawn: true, endedRunsInterval: .seconds(3600))
        try await engine.start()
        func runIDs() -> [String] { ((try? String(contentsOfFile: ran, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        _ = try await engine.submit(.taskTriggered(harness.taskName("tick")))
        #expect(await harness.wait { try harness.entries().finishedRuns.count == 1 }, "the first end is journaled at once")
        #expect(await harness.wait { await engine.runsInProgress == 0 }, "the first run is over")
        _ = try await engine.submit(.taskTriggered(harness.taskName("tick")))
        #expect(await harness.wait { runIDs().count >= 2 && harness.processes(ofRun: runIDs()[1]).isEmpty }, "the second run's process is gone")
        #expect(await harness.wait { await engine.endedRunsWaiting == 1 }, "the engine has the second run's end")
        let entries = try harness.entries()
        #expect(entries.finishedRuns.count == 1 && entries.startedRuns.count == 2,
                "the second run's end waits: started \(entries.startedRuns.count), finished \(entries.finishedRuns.count)")
        #expect(await engine.runsInProgress == 1, "and it counts as running until then")
        let stop = Task { await engine.stop() }
        let ended = await harness.wait(upTo: .seconds(60)) { await engine.runsInProgress == 0 }
        #expect(ended, "the stop journals the waiting end")
        guard ended else { return }  // a stop waiting out the hour would hang the suite
        await stop.value
        let after = try harness.entries()
        #expect(after.finishedRuns.count == 2 && after.startedRuns.count == 2, "every run's end journaled")
        #expect(after.finishedRuns.allSatisfy { $0.outcome == .succeeded }, "\(after.finishedRuns)")
    }
}
