import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// A slot has passed only once its own firing moment (slot + jitter + the task's sub-second phase) has: a
/// restart or a stall at 0.5 s past a second must not skip (or catch up) the slot a task fires at 0.8 s.
struct CatchUpRuleTests {
    /// A task every 10 s saved 800 ms into second `anchor`, so it fires at anchor + 10k s + 0.8 s.
    func task(anchor: Int64, policy: CatchUpPolicy, limit: Int = 3) throws -> TaskState {
        var state = SchedulerState()
        var runPolicy = RunPolicy()
        runPolicy.catchUp = policy
        runPolicy.catchUpLimit = limit
        let name = try TaskName("phased")
        let definition = TaskDefinition(name: name, description: "d", action: .command("true"), schedule: ScheduleSpec(.every(10, .seconds)),
                                        policy: runPolicy, directory: "/tmp/phased")
        Reducer.apply(JournalEntry(at: anchor * 1000 + 800, .taskSaved(definition, taskID: "6f1c0c9e-3d1f-4d8e-9a51-2b7f0e9c4a10")), lsn: 1, to: &state)
        return try #require(state.tasks[name])
    }

    func plan(_ task: TaskState, nowMs: Int64) -> CatchUpPlan? {
        let calculator = task.scheduleCalculator(defaultTimeZone: TimeZone(identifier: "UTC")!)
        return CatchUpRule.plan(for: task, calculator: calculator, after: task.anchor, through: nowMs, rerunning: false)
    }

    @Test func aSlotWhoseMomentHasNotComeHasNotPassed() throws {
        let anchor: Int64 = 1_800_000_000
        let phased = try task(anchor: anchor, policy: .skip)
        #expect(phased.phaseMilliseconds == 800)
        // 0.5 s into the second of slot anchor + 10: its moment (0.8 s) is still ahead.
        #expect(plan(phased, nowMs: (anchor + 10) * 1000 + 500) == nil)
        // Once 0.8 s is past, it has passed.
        let one = try #require(plan(phased, nowMs: (anchor + 10) * 1000 + 900))
        #expect((one.total, one.firstSlot, one.lastSlot) == (1, anchor + 10, anchor + 10))
        // Two slots later at 0.5 s: anchor + 10 passed, anchor + 20 has not.
        let later = try #require(plan(phased, nowMs: (anchor + 20) * 1000 + 500))
        #expect((later.total, later.lastSlot) == (1, anchor + 10))
        #expect(later.missed?.slot == anchor + 10 && later.missed?.count == 1)
    }

    @Test func catchUpOnceRunsTheNewestSlotThatPassed() throws {
        let anchor: Int64 = 1_800_000_000
        let phased = try task(anchor: anchor, policy: .once)
        let caught = try #require(plan(phased, nowMs: (anchor + 40) * 1000 + 100))
        #expect(caught.total == 3 && caught.toRun == [anchor + 30])
        #expect(caught.missed?.count == 2 && caught.missed?.slot == anchor + 20)
    }

    /// `all` runs the newest `catchUpLimit` slots, and the record of the ones given up names the last of those,
    /// the slot before the first run (it named the first run's own slot, so a crash between that record and the
    /// runs left the cursor past a slot that never ran). The plan's first slot is the first that passed, not
    /// the first one it looked at (the recovery report printed a range shorter than its count).
    @Test func catchUpAllRunsTheNewestSlotsAndRecordsTheOnesBeforeThem() throws {
        let anchor: Int64 = 1_800_000_000
        let phased = try task(anchor: anchor, policy: .all, limit: 3)
        let caught = try #require(plan(phased, nowMs: (anchor + 200) * 1000 + 900))
        #expect(caught.total == 20 && caught.firstSlot == anchor + 10 && caught.toRun == [anchor + 180, anchor + 190, anchor + 200])
        #expect(caught.missed?.count == 17 && caught.missed?.slot == anchor + 170, "\(String(describing: caught.missed))")
        // As many slots passed as the limit: all of them run, none is missed.
        let few = try #require(plan(phased, nowMs: (anchor + 30) * 1000 + 900))
        #expect(few.toRun == [anchor + 10, anchor + 20, anchor + 30] && few.missed == nil)
        // One more: the first is missed.
        let one = try #require(plan(phased, nowMs: (anchor + 40) * 1000 + 900))
        #expect(one.toRun == [anchor + 20, anchor + 30, anchor + 40] && one.missed?.slot == anchor + 10 && one.missed?.count == 1)
    }
}
