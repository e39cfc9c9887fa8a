import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// Catch-up runs and interrupted-run re-runs respect `--disable` and the error flag: whether the task was
/// disabled or in error while the scheduler was down, or became so while recovery's runs were still queued.
struct CatchUpGuardTests {
    /// Runs a task once, stops the scheduler cleanly and lets `downtime` pass, so the next start owes catch-up runs.
    func taskWithMissedSlots(_ harness: SchedulerHarness, command: String, downtime: Duration = .milliseconds(4500)) async throws -> TaskName {
        try await harness.defineOffline(try harness.commandTask("series", command) {
            $0.catchUp = .all
            $0.catchUpLimit = 3
        })
        let name = harness.taskName("series")
        let first = harness.engine()
        try await first.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == name } })
        await first.stop()
        try await Task.sleep(for: downtime)
        return name
    }

    /// Catch-up runs of `name` journaled after the first `skipping` records (the first start may catch up too).
    func catchUpRuns(_ harness: SchedulerHarness, _ name: TaskName, after skipping: Int) throws -> [RunStart] {
        Array(try harness.entries().dropFirst(skipping)).startedRuns.filter { $0.task == name && $0.trigger == .catchUp }
    }

    @Test func queuedCatchUpRunsStopWhenTheTaskIsDisabled() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // A run lasts while `hold` is in the task folder, so the first catch-up run is still going when the
        // disable arrives however slow the machine (a `sleep 1` could end first on a loaded one).
        let name = try await taskWithMissedSlots(harness, command: "while [ -e hold ]; do sleep 0.05; done")
        let hold = harness.workspace.taskDirectory(name) + "/hold"
        #expect(FileManager.default.createFile(atPath: hold, contents: nil))
        let before = try harness.entries().count
        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.missedSlots.first { $0.task == name }?.runs == 3, "three catch-up runs are queued")
        #expect(await harness.wait { try catchUpRuns(harness, name, after: before).count == 1 })
        _ = try await engine.submit(.taskDisabled(name))
        try FileManager.default.removeItem(atPath: hold)
        // The first catch-up run goes on; the two queued behind it must not start.
        let firstRun = try #require(try catchUpRuns(harness, name, after: before).first).runID
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.runID == firstRun } })
        // Once it is over the queue goes on or ends: the two runs behind it begin, or are dropped and said so.
        #expect(await harness.wait {
            try harness.log(of: "series").components(separatedBy: "dropped: the task was disabled").count == 3
                || catchUpRuns(harness, name, after: before).count > 1
        }, "\(harness.log(of: "series"))")
        #expect(try catchUpRuns(harness, name, after: before).count == 1)
        await engine.stop()
    }

    @Test func queuedCatchUpRunsStopWhenTheTaskGoesIntoError() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // Succeeds until the test drops `fail-now` into the task folder, after the first scheduler stopped.
        let name = try await taskWithMissedSlots(harness, command: "[ -e fail-now ] && exit 1; true")
        #expect(FileManager.default.createFile(atPath: harness.workspace.taskDirectory(name) + "/fail-now", contents: nil))
        let before = try harness.entries().count
        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.missedSlots.first { $0.task == name }?.runs == 3)
        #expect(await harness.wait { await engine.state.tasks[name]?.isError == true }, "the first catch-up run fails")
        // Its end decides the rest of the queue: the two runs behind it begin, or are dropped and said so.
        #expect(await harness.wait {
            try harness.log(of: "series").components(separatedBy: "dropped: the task is in error").count == 3
                || catchUpRuns(harness, name, after: before).count > 1
        }, "\(harness.log(of: "series"))")
        #expect(try catchUpRuns(harness, name, after: before).count == 1, "no catch-up run for a task in error")
        await engine.stop()
    }

    /// Slots that passed while the task was in error are not owed after `--resolve`.
    @Test func resolvingATaskOfflineOwesNoCatchUpForItsTimeInError() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("fails", "exit 1"))
        let name = harness.taskName("fails")
        let first = harness.engine()
        try await first.start()
        #expect(await harness.wait { await first.state.tasks[name]?.isError == true })
        await first.stop()
        try await Task.sleep(for: .milliseconds(2500))
        let resolvedAt = Int64(Date().timeIntervalSince1970)
        try await OfflineCommands.submit(.taskResolved(name), workspace: harness.workspace, settings: harness.settings)
        let before = try harness.entries().count
        // Slots pass after the resolve too: those are owed, so the checks below look at a catch-up that happens.
        #expect(await harness.wait { Int64(Date().timeIntervalSince1970) > resolvedAt + 2 })
        let engine = harness.engine()
        let report = try await engine.start()
        // Only a slot that passed after the resolve (between it and this start) may be owed.
        let owed = report.missedSlots.filter { $0.task == name }
        try #require(!owed.isEmpty, "the slots after the resolve are owed: \(report.missedSlots)")
        #expect(owed.allSatisfy { $0.firstSlot > resolvedAt }, "\(report.missedSlots)")
        #expect(await harness.wait { try !catchUpRuns(harness, name, after: before).isEmpty }, "the owed slot's catch-up run began")
        await engine.stop()
        #expect(try catchUpRuns(harness, name, after: before).allSatisfy { $0.slot! > resolvedAt })
    }

    /// Disabled (journaled offline) or in error while the scheduler was down: no re-run, no catch-up.
    @Test func aTaskDisabledOrInErrorWhileDownGetsNoRerunAndNoCatchUp() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("sleeper", "sleep 60"))
        try await harness.defineOffline(try harness.commandTask("broken", "exit 1"))
        let sleeper = harness.taskName("sleeper")
        let broken = harness.taskName("broken")
        let crashes = CrashRecoveryTests()
        let scheduler = try crashes.launch(harness)
        #expect(await harness.wait {
            let entries = try harness.entries()
            return entries.startedRuns.contains { $0.task == sleeper } && entries.finishedRuns.contains { $0.task == broken }
        })
        crashes.killHard(scheduler)
        try await OfflineCommands.submit(.taskDisabled(sleeper), workspace: harness.workspace, settings: harness.settings)
        try await Task.sleep(for: .milliseconds(2500))
        try await harness.defineWitness()  // made now, it owes no slot of the downtime
        let recordsBeforeRestart = try harness.entries().count
        let engine = harness.engine()
        let restartedAt = SchedulerHarness.nowSeconds
        let report = try await engine.start()
        #expect(report.interruptedRuns.first { $0.task == sleeper }?.action == "not re-run (task disabled)")
        #expect(report.missedSlots.filter { $0.task != harness.taskName("witness") }.allSatisfy { $0.runs == 0 }, "\(report.missedSlots)")
        // The recovery's runs and two slots of both tasks would have begun by the time this one has run.
        #expect(await harness.witnessRan(fromSlot: restartedAt + 2))
        await engine.stop()
        let sinceRestart = Array(try harness.entries().dropFirst(recordsBeforeRestart)).startedRuns.filter { $0.task == sleeper || $0.task == broken }
        #expect(sinceRestart.isEmpty, "no re-run, no catch-up, no run at all: \(sinceRestart)")
    }
}
