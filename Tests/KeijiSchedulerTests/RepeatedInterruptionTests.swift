import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// A run that is interrupted by every scheduler crash must not be re-run forever (a task that crashes the
/// scheduler would crash-loop it): attempts continue across restarts, and after
/// ``SchedulerEngine/interruptionLimit`` interruptions of the same slot the slot is given up and the task
/// goes into error.
struct RepeatedInterruptionTests {
    @Test func aSlotInterruptedByEveryRestartIsGivenUpAfterThreeAttempts() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let crashes = CrashRecoveryTests()
        try await harness.defineOffline(try harness.commandTask("long", "sleep 60", every: 5) { $0.catchUp = .skip })
        let name = harness.taskName("long")

        // Kill -9 the real scheduler during the same long run three times in a row.
        var slot: Int64?
        for attempt in 1...SchedulerEngine.interruptionLimit {
            let scheduler = try crashes.launch(harness)
            var run: RunStart?
            #expect(await harness.wait(upTo: .seconds(60)) {
                run = try harness.entries().startedRuns.first { $0.task == name && $0.attempt == attempt }
                return run.map { !harness.processes(ofRun: $0.runID).isEmpty } ?? false
            }, "attempt \(attempt) started")
            crashes.killHard(scheduler)
            let started = try #require(run)
            if attempt == 1 { slot = started.slot }
            #expect(started.slot == slot && slot != nil, "every attempt serves the first slot")
            #expect(started.trigger == (attempt == 1 ? .schedule : .recovery))
            #expect(started.interruptions == (attempt == 1 ? nil : attempt - 1))
            #expect(await harness.wait(upTo: .seconds(60)) { harness.processes(ofRun: started.runID).isEmpty })
        }

        try await harness.defineWitness()
        let engine = harness.engine()
        let restartedAt = SchedulerHarness.nowSeconds
        let report = try await engine.start()
        let interrupted = try #require(report.interruptedRuns.first { $0.task == name })
        #expect(interrupted.action == "given up (interrupted 3 times); task in error")
        #expect(interrupted.attempt == 3 && interrupted.interruptions == 3)
        let task = try #require(await engine.state.tasks[name])
        let slotText = ISO8601.string(fromSeconds: try #require(slot))
        #expect(task.isError)
        #expect(task.errorText == "[ task error ]: run of slot \(slotText) interrupted 3 times by scheduler restarts; given up")
        #expect(await harness.witnessRan(fromSlot: restartedAt + 1), "a re-run would have begun as the engine started")
        await engine.stop()

        // The journal shows attempts 1, 2, 3 of that one slot, and nothing after the give-up.
        let entries = try harness.entries()
        #expect(entries.startedRuns.filter { $0.task == name }.map(\.attempt) == [1, 2, 3])
        var givenUp: [String?] = []
        for entry in entries { if case .runInterrupted(_, name, let reason, _) = entry.event { givenUp.append(reason) } }
        #expect(givenUp == [nil, nil, "run of slot \(slotText) interrupted 3 times by scheduler restarts; given up"])

        // A later start does not bring the slot back, and the view shows the error.
        let again = harness.engine()
        let second = try await again.start()
        #expect(second.interruptedRuns.isEmpty)
        #expect(await again.state.tasks[name]?.isError == true)
        await again.stop()
        #expect(try harness.entries().startedRuns.filter { $0.task == name }.count == 3)
        let db = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        #expect(try db.rows("SELECT IsError, IsRunning FROM task_models WHERE Name = 'long'") == [["1", "0"]])
    }
}
