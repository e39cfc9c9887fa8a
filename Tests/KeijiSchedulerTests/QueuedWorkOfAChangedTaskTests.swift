import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// Work queued for a task (catch-ups after a restart) belongs to the definition it was queued under: a redefinition
/// (`--create --force`) or a `--delete` and create again under the same name must not make it run the new definition.
struct QueuedWorkOfAChangedTaskTests {
    /// A task whose first catch-up run of three is going (it lasts while `hold` is in its folder, a stop's SIGTERM
    /// notwithstanding), the records so far, and the last slot queued. Slots after it are the schedule's: on a loaded
    /// machine the timer may find itself stalled, and catch those up or record them missed too.
    /// Returned once the run's command began, not at its `run.started`: until the spawn server has begun it, a
    /// `--disable` withdraws the run (`stopped (never began)`), and the queue's turn could come before the `--enable`.
    func catchingUp(_ harness: SchedulerHarness) async throws -> (TaskName, SchedulerEngine, before: Int, hold: String, lastQueued: Int64) {
        let name = try await CatchUpGuardTests().taskWithMissedSlots(harness, command: "trap '' TERM; touch began; while [ -e hold ]; do sleep 0.05; done")
        let hold = harness.workspace.taskDirectory(name) + "/hold"
        let began = harness.workspace.taskDirectory(name) + "/began"
        try? FileManager.default.removeItem(atPath: began)  // left by the runs before the downtime
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        let before = try harness.entries().count
        let engine = harness.engine()
        let report = try await engine.start()
        let planned = try #require(report.missedSlots.first { $0.task == name })
        #expect(planned.runs == 3, "three catch-up runs are queued")
        #expect(await harness.wait { try CatchUpGuardTests().catchUpRuns(harness, name, after: before).count == 1 })
        #expect(await harness.wait { FileManager.default.fileExists(atPath: began) }, "the first catch-up run began")
        return (name, engine, before, hold, planned.lastSlot)
    }

    /// The catch-up runs after the first `skipping` records, and the queued slots (after the first catch-up run's, up
    /// to `last`) recorded missed since. Counted by slot, not from a command's record on: a queue's drop can be
    /// journaled before the test reads how many records its command left (it failed so under load).
    func queued(_ harness: SchedulerHarness, _ name: TaskName, after skipping: Int, through last: Int64) throws -> (runs: Int, missed: Int) {
        let runs = try CatchUpGuardTests().catchUpRuns(harness, name, after: skipping).filter { ($0.slot ?? .max) <= last }
        let first = runs.compactMap(\.slot).min() ?? last
        let missed = Array(try harness.entries().dropFirst(skipping)).missedRuns(.downtime).filter { $0.task == name && $0.slot > first && $0.slot <= last }
        return (runs.count, missed.map(\.count).reduce(0, +))
    }

    @Test func queuedCatchUpsOfARedefinedTaskAreDroppedAndRecorded() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (name, engine, before, hold, last) = try await catchingUp(harness)
        let redefined = try harness.commandTask("series", "echo NEW") { $0.catchUp = .skip }
        _ = try await engine.submit(.taskSaved(redefined, taskID: UUID().uuidString.lowercased()))
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { await engine.catchingUp.isEmpty })
        #expect(try queued(harness, name, after: before, through: last).runs == 1, "the queued two never start")
        #expect(try queued(harness, name, after: before, through: last).missed == 2, "each dropped slot of the schedule the task still has is recorded missed")
        #expect(harness.log(of: "series").contains("dropped: the task was redefined"))
        await engine.stop()
    }

    /// A `--disable` ends the queue, even when the task is enabled again before the next one's turn, as it drops
    /// queued `--run`s; each slot dropped is recorded, not left out of the history.
    @Test func aDisableDuringCatchUpEndsTheQueueAndRecordsItsSlots() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (name, engine, before, hold, last) = try await catchingUp(harness)
        _ = try await engine.submit(.taskDisabled(name))
        _ = try await engine.submit(.taskEnabled(name))
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { await engine.catchingUp.isEmpty })
        #expect(try queued(harness, name, after: before, through: last).runs == 1, "the queued two never start")
        #expect(try queued(harness, name, after: before, through: last).missed == 2, "each dropped slot is recorded missed")
        #expect(harness.log(of: "series").contains("dropped: the task was disabled or in error since they were queued"))
        await engine.stop()
    }

    /// The scheduler's log (a deleted task's dropped work is said there: its own log is removed with it).
    func schedulerLog(_ harness: SchedulerHarness) -> String {
        (try? String(contentsOfFile: harness.workspace.serviceLogFile("scheduler"), encoding: .utf8)) ?? ""
    }

    /// Waits until the scheduler's log says at least the two queued catch-up runs of the deleted `series` were
    /// dropped (a loaded timer that finds itself stalled can queue schedule slots behind them).
    func saysTheQueuedTwoDropped(_ harness: SchedulerHarness) async -> Bool {
        await harness.wait { schedulerLog(harness).components(separatedBy: "task series: a queued catch-up run of a deleted task dropped").count >= 3 }
    }

    /// The queue's next turn comes as soon as the delete is applied (the deleted task's run, still in its grace, is
    /// no run of the name any more): with no task of that name, the two queued are dropped, and said so.
    @Test func queuedCatchUpsOfADeletedTaskAreSaidDropped() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (name, engine, before, hold, last) = try await catchingUp(harness)
        _ = try await engine.submit(.taskDeleted(name))
        #expect(await saysTheQueuedTwoDropped(harness), "the scheduler's log says the two queued ones were dropped: \(schedulerLog(harness))")
        #expect(await harness.wait { await engine.catchingUp.isEmpty })
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { Array(try harness.entries().dropFirst(before)).finishedRuns.contains { $0.task == name } }, "the deleted task's run ends")
        #expect(try queued(harness, name, after: before, through: last).runs == 1, "the queued two never start")
        await engine.stop()
    }

    /// Whether the new task exists when the queue's turn comes depends on how soon it is saved after the delete: the
    /// two queued are dropped, and said so, either way.
    @Test func queuedCatchUpsOfADeletedTaskDoNotRunInATaskCreatedUnderItsName() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (name, engine, before, hold, last) = try await catchingUp(harness)
        _ = try await engine.submit(.taskDeleted(name))
        let fresh = try harness.commandTask("series", "echo FRESH", every: 3600) { $0.catchUp = .skip }
        _ = try await engine.submit(.taskSaved(fresh, taskID: UUID().uuidString.lowercased()))
        try FileManager.default.removeItem(atPath: hold)
        #expect(await saysTheQueuedTwoDropped(harness), "the scheduler's log says the two queued ones were dropped: \(schedulerLog(harness))")
        #expect(try queued(harness, name, after: before, through: last).runs == 1, "the new task runs none of the old one's slots")
        #expect(try queued(harness, name, after: before, through: last).missed == 0, "nor are they recorded as the new task's")
        await engine.stop()
    }
}

/// A retry runs the task's definition when it fires: one owed by a run of a definition replaced since would run a
/// command that never had a first attempt, so it is dropped, and the task's log says so.
struct RetryOfAChangedTaskTests {
    @Test func aRunFailingAfterARedefinitionIsNotRetriedWithTheNewCommand() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let old = try harness.commandTask("flaky", "while [ -e hold ]; do sleep 0.05; done; exit 3", every: 3600) {
            $0.retries = 2
            $0.retryBackoffSeconds = 0
        }
        let hold = old.directory + "/hold"
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        try await harness.defineOffline(old)
        let engine = harness.engine()
        try await engine.start()
        _ = try await engine.submit(.taskTriggered(old.name))
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == old.name } })
        let runID = try #require(try harness.entries().startedRuns.first { $0.task == old.name }).runID
        let new = try harness.commandTask("flaky", "echo NEW; exit 4", every: 3600) {
            $0.retries = 2
            $0.retryBackoffSeconds = 0
        }
        _ = try await engine.submit(.taskSaved(new, taskID: UUID().uuidString.lowercased()))
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { await engine.state.tasks[old.name]?.isError == true }, "the failure is final")
        let end = try #require(try harness.entries().finishedRuns.first { $0.runID == runID })
        #expect(end.final && end.exitCode == 3)
        #expect(try harness.entries().startedRuns.filter { $0.trigger == .retry }.isEmpty, "no retry ran the new command")
        #expect(harness.log(of: "flaky").contains("run \(runID) is not retried (attempt 2 dropped): the task was redefined"))
        await engine.stop()
    }

    /// A `--disable` during the backoff drops the retry, and the task's log says so (nothing did).
    @Test func aRetryDroppedByADisableDuringItsBackoffIsSaid() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let task = try harness.commandTask("backoff", "exit 3", every: 3600) {
            $0.retries = 1
            $0.retryBackoffSeconds = 30  // no stall of a loaded machine outlasts it between the run's end and the disable
        }
        try await harness.defineOffline(task)
        let engine = harness.engine()
        try await engine.start()
        _ = try await engine.submit(.taskTriggered(task.name))
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == task.name && !$0.final } })
        _ = try await engine.submit(.taskDisabled(task.name))
        #expect(await harness.wait(upTo: .seconds(120)) { harness.log(of: "backoff").contains("is not retried (attempt 2 dropped): the task was disabled") })
        #expect(try harness.entries().startedRuns.filter { $0.trigger == .retry }.isEmpty)
        await engine.stop()
    }

    @Test func aRunInterruptedBeforeARedefinitionIsNotReRunWithTheNewCommand() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let old = try harness.commandTask("longrun", "sleep 30", every: 3600)
        try await harness.defineOffline(old)
        // A crash during the run: its run.started without an end, then the task redefined while no scheduler ran.
        try await RunNowTests().appendUnchecked([.schedulerStarted(pid: 1), .runStarted(RunStart(runID: "interrupted1", task: old.name, slot: nil,
                                                                                                 attempt: 1, trigger: .manual))], harness)
        try await Task.sleep(for: .milliseconds(20))  // the save is journaled later than the start, to the millisecond
        try await harness.defineOffline(try harness.commandTask("longrun", "echo NEW", every: 3600))
        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.interruptedRuns.first { $0.runID == "interrupted1" }?.action == "not re-run (task changed during the run)")
        #expect(try harness.entries().startedRuns.filter { $0.trigger == .recovery }.isEmpty)
        await engine.stop()
    }

    /// A `--disable` and `--enable` during a run change no definition: the run a crash interrupted is re-run (its
    /// slot's work was left undone, the report saying `not re-run (task changed during the run)`).
    @Test func aRunInterruptedAfterADisableAndEnableIsReRun() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let task = try harness.commandTask("longrun", "sleep 30", every: 3600)
        try await harness.defineOffline(task)
        try await RunNowTests().appendUnchecked([.schedulerStarted(pid: 1), .runStarted(RunStart(runID: "interrupted1", task: task.name, slot: nil,
                                                                                                 attempt: 1, trigger: .manual))], harness)
        try await Task.sleep(for: .milliseconds(20))  // the disable is journaled later than the start, to the millisecond
        try await RunNowTests().appendUnchecked([.taskDisabled(task.name), .taskEnabled(task.name)], harness)
        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.interruptedRuns.first { $0.runID == "interrupted1" }?.action == "re-run")
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == task.name && $0.trigger == .recovery } })
        await engine.stop()
    }
}

/// A deleted task's run still in its stop's grace is no run of a task created again under its name.
struct RunOfADeletedTaskTests {
    @Test func aDeletedTasksRunInItsGraceIsNoRunOfATaskCreatedUnderItsName() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let old = try harness.commandTask("dd", "trap '' TERM; touch began; while [ -e hold ]; do sleep 0.05; done", every: 3600) {
            $0.graceSeconds = 60
        }
        let hold = old.directory + "/hold"
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        try await harness.defineOffline(old)
        let engine = harness.engine()
        try await engine.start()
        _ = try await engine.submit(.taskTriggered(old.name))
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == old.name } })
        let oldRun = try #require(try harness.entries().startedRuns.first { $0.task == old.name }).runID
        #expect(await harness.wait { FileManager.default.fileExists(atPath: old.directory + "/began") }, "its SIGTERM is ignored from now on")
        _ = try await engine.submit(.taskDeleted(old.name))
        // Of its own, the new task runs only when asked: whatever runs of the name are going are the old task's.
        _ = try await engine.submit(.taskSaved(try harness.commandTask("dd", "true", every: 3600), taskID: UUID().uuidString.lowercased()))
        #expect(await engine.state.isRunning(old.name) == false, "the new task is not shown running")
        let asked = try harness.entries().count
        _ = try await engine.submit(.taskTriggered(old.name))  // refused as an overlap of the old run without the fix
        #expect(await harness.wait { Array(try harness.entries().dropFirst(asked)).finishedRuns.contains { $0.task == old.name && $0.runID != oldRun } },
                "the new task's run is no overlap of the old one")
        #expect(try !harness.entries().finishedRuns.contains { $0.runID == oldRun }, "the old run was still going")
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.runID == oldRun } })
        #expect(await harness.wait { await engine.state.runsOfDeletedTasks == nil })
        #expect(await engine.state.tasks[old.name]?.recentRuns.contains { $0.runID == oldRun } == false, "nor is it in the new task's history")
        await engine.stop()
    }
}

/// A delete stops the task's run with the grace of the definition it runs: the task is gone by the time the stop is
/// sent, and its grace was looked up there (5 s, the default, whatever the task said).
struct DeleteGraceTests {
    @Test func aDeleteKillsARunThatIgnoresSIGTERMOnlyAfterItsOwnGrace() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let task = try harness.commandTask("gd", "trap 'touch termed' TERM; touch began; while [ -e hold ]; do sleep 0.05; done", every: 3600) {
            $0.graceSeconds = 60
        }
        let hold = task.directory + "/hold"
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        try await harness.defineOffline(task)
        try await harness.defineWitness()
        let engine = harness.engine()
        try await engine.start()
        _ = try await engine.submit(.taskTriggered(task.name))
        #expect(await harness.wait { FileManager.default.fileExists(atPath: task.directory + "/began") }, "its SIGTERM is trapped from now on")
        let runID = try #require(try harness.entries().startedRuns.first { $0.task == task.name }).runID
        _ = try await engine.submit(.taskDeleted(task.name))
        #expect(await harness.wait { FileManager.default.fileExists(atPath: task.directory + "/termed") }, "the delete sent SIGTERM")
        // Past the default's 5 s after it, in its 60 s: by the time the engine has run a slot 7 s on.
        #expect(await harness.witnessRan(fromSlot: SchedulerHarness.nowSeconds + 7))
        #expect(!harness.processes(ofRun: runID).isEmpty, "still going in its own grace")
        #expect(try !harness.entries().finishedRuns.contains { $0.runID == runID })
        try FileManager.default.removeItem(atPath: hold)
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.runID == runID } })
        await engine.stop()
    }
}
