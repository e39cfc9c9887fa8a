import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// A step of the wall clock back (NTP, a VM's clock corrected, an operator): a slot that ran never runs again.
struct ClockStepBackTests {
    /// The slots started more than once, from the journal.
    func slotsStartedTwice(_ harness: SchedulerHarness, _ name: TaskName) throws -> [Int64] {
        let slots = try harness.entries().startedRuns.filter { $0.task == name }.compactMap(\.slot)
        return Dictionary(grouping: slots, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
    }

    @Test func anEnableWhileTheClockIsBehindRunsNoSlotAgainAfterARestart() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("a", "true", every: 10) { $0.catchUp = .all })
        let name = harness.taskName("a")
        let clock = SteppedClock()
        var engine = harness.engine(spawn: false, clock: clock)
        try await engine.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == name } }, "a slot runs")
        #expect(await harness.wait { await engine.freezeIfQuiet([name], clock) })
        let ran = try #require(try harness.entries().startedRuns.compactMap(\.slot).max())
        clock.step(byMilliseconds: -60_000)
        _ = try await engine.submit(.taskDisabled(name))
        _ = try await engine.submit(.taskEnabled(name))
        await engine.stop()
        // The engine's memory of the slots it fired is gone; the clock comes back over the slots that ran.
        engine = harness.engine(spawn: false, clock: clock)
        try await engine.start()
        clock.step(byMilliseconds: 60_000)
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == name && ($0.slot ?? 0) > ran } },
                "the schedule goes on after the slot that ran")
        await engine.stop()
        let twice = try slotsStartedTwice(harness, name)
        #expect(twice.isEmpty, "slots run twice: \(twice)")
    }
}
