import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// 100,000 tasks load and each fires, through the one timer heap (no `Task` per scheduled task).
struct ManyTasksTests {
    static let taskCount = 100_000

    /// Journals `count` interval tasks whose first slots fall `lead` seconds from now, phases spread over a second.
    func defineTasks(_ harness: SchedulerHarness, count: Int, every interval: Int, lead: Int64) async throws {
        var options = JournalOptions()
        options.durability = .none
        let journal = try Journal.open(directory: harness.workspace.journalDirectory, options: options)
        let savedAt = Int64(Date().timeIntervalSince1970 * 1000) - Int64(interval) * 1000 + lead * 1000
        var batch: [[UInt8]] = []
        for index in 0..<count {
            let name = try TaskName("many-\(index)")
            let definition = TaskDefinition(name: name, description: "one of many", action: .command("true"),
                                            schedule: ScheduleSpec(.every(interval, .seconds)), directory: harness.workspace.tasksDirectory)
            let at = savedAt + Int64(index) * 1000 / Int64(count)
            batch.append(try JournalEntry(at: at, .taskSaved(definition, taskID: "many-\(index)")).encoded())
            if batch.count == 5000 { _ = try await journal.append(contentsOf: batch); batch.removeAll() }
        }
        if !batch.isEmpty { _ = try await journal.append(contentsOf: batch) }
        try await journal.close()
    }

    /// Polls `engine`'s state (every 500 ms, not 25: a pass over 100,000 tasks is not free) until `condition`
    /// holds for every task or `timeout` passes; returns how many tasks it did not hold for.
    func tasksNotYet(_ engine: SchedulerEngine, upTo timeout: Duration, _ condition: @escaping @Sendable (TaskState) -> Bool) async -> Int {
        let deadline = ContinuousClock.now + timeout
        var left = Int.max
        while ContinuousClock.now < deadline {
            left = await engine.state.tasks.values.reduce(0) { $0 + (condition($1) ? 0 : 1) }
            if left == 0 { return 0 }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return left
    }

    /// 100,000 tasks whose slot passed while the scheduler was down: the start journals a bounded recovery report
    /// (the whole one is over the 4 MiB record limit) and catches each task up once; then the clock is stepped to
    /// just before their next slots and the timer fires all 100,000 of them.
    @Test func aHundredThousandTasksLoadAndFire() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try FileSystem.createDirectory(harness.workspace.journalDirectory)
        let interval: Int64 = 600
        try await defineTasks(harness, count: Self.taskCount, every: Int(interval), lead: -2)
        let clock = SteppedClock()
        let engine = harness.engine(spawn: false, clock: clock)
        let loadStarted = ContinuousClock.now
        let report = try await engine.start()
        print("100k: start took \(ContinuousClock.now - loadStarted)")
        #expect(await engine.state.tasks.count == Self.taskCount)
        #expect(report.missedSlots.count == Self.taskCount && report.missedSlots.allSatisfy { $0.runs == 1 })
        let caughtUp = await tasksNotYet(engine, upTo: .seconds(300)) { $0.lastStartedAt != nil }
        #expect(caughtUp == 0, "every task's missed slot ran once within 300 s of the start (\(caughtUp) had not)")
        print("100k: catch-up fired after \(ContinuousClock.now - loadStarted)")
        // And finished: a task whose catch-up run is still going skips its next slot (overlap policy `skip`).
        #expect(await harness.wait(upTo: .seconds(300)) { await engine.runsInProgress == 0 }, "the catch-up runs finished")

        // Their next slots: step the clock to half a second before the first of them.
        let firstSlots = await engine.state.tasks.values.map { $0.lastSlot ?? 0 }
        let nextSlot = (firstSlots.min() ?? 0) + interval
        #expect(firstSlots.max() ?? 0 <= nextSlot - interval + 1, "the tasks' slots lie within two seconds")
        let stepped = nextSlot * 1000 - 500
        clock.step(byMilliseconds: stepped - clock.nowMilliseconds())
        let fireStarted = ContinuousClock.now
        let fired = await tasksNotYet(engine, upTo: .seconds(300)) { ($0.lastSlot ?? 0) >= nextSlot }
        #expect(fired == 0, "every task fired its next slot within 300 s (\(fired) had not)")
        print("100k: next slots fired after \(ContinuousClock.now - fireStarted)")
        let lateStarts = await engine.state.tasks.values.filter { ($0.lastStartedAt ?? 0) < stepped }.count
        #expect(lateStarts == 0)
        await engine.stop()
        // Each slot ran once: one catch-up run and one scheduled run per task, no more.
        let runs = await engine.state.tasks.values.map { $0.recentRuns.count }
        #expect(runs.allSatisfy { $0 == 2 }, "\(Dictionary(grouping: runs, by: { $0 }).mapValues(\.count))")
    }
}
