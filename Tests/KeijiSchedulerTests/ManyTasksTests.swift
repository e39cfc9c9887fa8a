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

    @Test func aHundredThousandTasksLoadAndFire() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try FileSystem.createDirectory(harness.workspace.journalDirectory)
        // Every 10 minutes, first slots ~20 s after the tasks are written: within the wait, each task fires once
        // (from the timer, or from recovery's catch-up if a loaded machine makes the start slower than that).
        try await defineTasks(harness, count: Self.taskCount, every: 600, lead: 20)
        let engine = harness.engine(spawn: false)
        let started = ContinuousClock.now
        try await engine.start()
        #expect(await engine.state.tasks.count == Self.taskCount)
        let deadline = started + .seconds(300)
        var unfired = Self.taskCount
        while ContinuousClock.now < deadline {
            unfired = await engine.state.tasks.values.reduce(0) { $0 + ($1.lastStartedAt == nil ? 1 : 0) }
            if unfired == 0 { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(unfired == 0, "every task fired within 300 s of the start (\(unfired) had not)")
        await engine.stop()
        let starts = try harness.entries().startedRuns
        #expect(Set(starts.map(\.task)).count == Self.taskCount)
        #expect(starts.count == Self.taskCount, "each task fired once (its next slot is 10 minutes later)")
    }
}
