import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

extension SchedulerEngine {
    /// Applies `events` as a cluster node applies the commands it pulls (``asOnePull(_:)``), then flushes the view.
    func applyAsOnePull(_ events: [JournalEntry.Event]) async throws {
        try await asOnePull {
            for event in events { _ = try await applyCommand(JournalEntry(at: clock.nowMilliseconds(), event)) }
        }
        await flushView()
    }
}

/// The engine tells the view which tasks were deleted since its last flush: a task deleted and created again
/// within one pull of cluster commands gets a fresh row, without the runs of the task it replaced.
struct PulledCommandsViewTests {
    @Test func aTaskDeletedAndCreatedAgainInOnePullKeepsNoRowsOfTheOldOne() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("alpha", "true"))
        var configuration = SchedulerConfiguration(workspace: harness.workspace, settings: harness.settings)
        configuration.spawnProcesses = false
        configuration.viewFlushInterval = .seconds(3600)  // only the flushes made here: none between the two commands
        let engine = SchedulerEngine(configuration: configuration)
        try await engine.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.count >= 2 })
        await engine.waitForView()
        let view = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        func runIDs() throws -> Set<String> { Set(try view.rows("SELECT RunId FROM runs WHERE TaskName = 'alpha'").compactMap { $0[0] }) }
        let old = try runIDs()
        #expect(old.count >= 2)

        try await engine.applyAsOnePull([
            .taskDeleted(harness.taskName("alpha")),
            .taskSaved(try harness.commandTask("alpha", "true", every: 3600), taskID: "id-again"),
        ])
        #expect(try runIDs().isDisjoint(with: old), "the runs of the deleted task are gone")
        #expect(try view.rows("SELECT TaskId FROM task_models WHERE Name = 'alpha'") == [["id-again"]])
        await engine.stop()
    }
}
