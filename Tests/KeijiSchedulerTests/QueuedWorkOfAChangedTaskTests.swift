import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// Work queued for a task (catch-ups after a restart) belongs to the definition it was queued under: a redefinition
/// (`--create --force`) or a `--delete` and create again under the same name must not make it run the new definition.
struct QueuedWorkOfAChangedTaskTests {
    /// A task whose first catch-up run of three is going (it lasts while `hold` is in its folder, a stop's SIGTERM
    /// notwithstanding), and the records so far.
    func catchingUp(_ harness: SchedulerHarness) async throws -> (TaskName, SchedulerEngine, before: Int, hold: String) {
        let name = try await CatchUpGuardTests().taskWithMissedSlots(harness, command: "trap '' TERM; while [ -e hold ]; do sleep 0.05; done")
        let hold = harness.workspace.taskDirectory(name) + "/hold"
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        let before = try harness.entries().count
        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.missedSlots.first { $0.task == name }?.runs == 3, "three catch-up runs are queued")
        #expect(await harness.wait { try CatchUpGuardTests().catchUpRuns(harness, name, after: before).count == 1 })
        return (name, engine, before, hold)
    }

    @Test func queuedCatchUpsOfARedefinedTaskAreDroppedAndRecorded() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (name, engine, before, hold) = try await catchingUp(harness)
        let redefined = try harness.commandTask("series", "echo NEW") { $0.catchUp = .skip }
        _ = try await engine.submit(.taskSaved(redefined, taskID: UUID().uuidString.lowercased()))
        let saved = try harness.entries().count
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { await engine.catchingUp.isEmpty })
        #expect(try CatchUpGuardTests().catchUpRuns(harness, name, after: before).count == 1, "the queued two never start")
        let dropped = Array(try harness.entries().dropFirst(saved)).missedRuns(.downtime).filter { $0.task == name }
        #expect(dropped.count == 2, "each dropped slot of the schedule the task still has is recorded missed")
        #expect(harness.log(of: "series").contains("dropped: the task was redefined"))
        await engine.stop()
    }

    @Test func queuedCatchUpsOfADeletedTaskDoNotRunInATaskCreatedUnderItsName() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (name, engine, before, hold) = try await catchingUp(harness)
        _ = try await engine.submit(.taskDeleted(name))
        let fresh = try harness.commandTask("series", "echo FRESH", every: 3600) { $0.catchUp = .skip }
        _ = try await engine.submit(.taskSaved(fresh, taskID: UUID().uuidString.lowercased()))
        let created = try harness.entries().count
        try FileManager.default.removeItem(atPath: hold)  // the deleted task's run ends after the new task exists
        #expect(await harness.wait {
            let log = try String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8)
            return log.components(separatedBy: "task series: a queued catch-up run of a deleted task dropped").count == 3
        }, "the scheduler's log says the two queued ones were dropped")
        #expect(try CatchUpGuardTests().catchUpRuns(harness, name, after: before).count == 1, "the new task runs none of the old one's slots")
        #expect(Array(try harness.entries().dropFirst(created)).missedRuns(.downtime).isEmpty, "nor are they recorded as the new task's")
        await engine.stop()
    }
}
