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

    /// Looks a second apart: a wall clock that kept pace (or jumped ahead) is no step back; one that lost over a second
    /// against the monotonic clock is, once.
    @Test func aStepBackIsTheWallClocksLossAgainstTheMonotonicOne() {
        var watch = ClockStepWatch(wall: 1_000_000, monotonic: 50_000)
        #expect(watch.steppedBack(wall: 1_001_000, monotonic: 51_000) == nil)
        #expect(watch.steppedBack(wall: 1_601_000, monotonic: 52_000) == nil, "a step forward")
        #expect(watch.steppedBack(wall: 1_602_400, monotonic: 53_000) == nil, "drift")
        #expect(watch.steppedBack(wall: 1_003_000, monotonic: 54_000) == 600_400)
        #expect(watch.steppedBack(wall: 1_004_000, monotonic: 55_000) == nil, "said once")
    }

    /// A step back while the scheduler runs is said in its log: nothing runs until the clock comes back to the slots
    /// after those run, and it was silent.
    @Test func aStepBackWhileRunningIsSaidInTheLog() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("a", "true", every: 10))
        let clock = SteppedClock()
        let engine = harness.engine(spawn: false, clock: clock)
        try await engine.start()
        let log = { (try? String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8)) ?? "" }
        clock.step(byMilliseconds: -600_000)
        #expect(await harness.wait { log().contains("the wall clock stepped back by 600") }, "\(log())")
        await engine.stop()
    }

    /// A start whose clock is behind the journal's latest record (stepped back while stopped) says so in its report
    /// and log: it said "missed slots: none" and nothing about tasks that would not run for two hours.
    @Test func aStartWithTheClockBehindTheJournalSaysSo() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("a", "true", every: 10))
        let clock = SteppedClock()
        var engine = harness.engine(spawn: false, clock: clock)
        let first = try await engine.start()
        #expect(first.journalAheadAt == nil)
        await engine.stop()
        clock.step(byMilliseconds: -7_200_000)
        engine = harness.engine(spawn: false, clock: clock)
        let report = try await engine.start()
        await engine.stop()
        let ahead = try #require(report.journalAheadAt)
        #expect(ahead - report.startedAt > 7_100_000)
        let entries = report.entries(instant: { "\($0)" }, slot: { "\($0)" })
        #expect(entries.contains { $0.label == "CLOCK" && $0.value.contains("behind the journal's latest record") }, "\(entries)")
        let log = try String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8)
        #expect(log.contains("s behind the journal's latest record"), "\(log)")
    }
}
