import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Processes that leave the run's group (`setsid cmd &`, a double-forked daemon, Python's `start_new_session`)
/// outlived the run's timeout, its `--stop`, its task's `--delete` and the scheduler's stop, and wrote on into its
/// log: the group kill does not reach them. They still carry the run's `KEIJI_RUN_ID`, and a run keiji ends has every
/// process that does killed. Each run here leaves such a process, found by its session (its own) and the run ID.
struct EscapedProcessTests {
    static let escaping = "setsid sleep 300 & sleep 100"

    /// The run's processes that lead a session of their own: they left its group.
    func escapees(ofRun runID: String, _ harness: SchedulerHarness) -> [pid_t] {
        harness.processes(ofRun: runID).filter { getsid($0) == $0 }
    }

    /// Triggers `raw` and returns its run's ID once its escapee is there.
    func escapedRun(_ raw: String, _ harness: SchedulerHarness, _ engine: SchedulerEngine) async throws -> String {
        let started = try harness.entries().startedRuns.count
        _ = try await engine.submit(.taskTriggered(harness.taskName(raw)))
        #expect(await harness.wait { try harness.entries().startedRuns.count > started })
        let runID = try #require(try harness.entries().startedRuns.last?.runID)
        #expect(await harness.wait { !escapees(ofRun: runID, harness).isEmpty }, "the run's setsid process started")
        return runID
    }

    /// Kills what a failed check left, so that a failure does not leave sleeps behind for 300 s.
    func cleanUp(_ runIDs: [String], _ harness: SchedulerHarness) {
        for runID in runIDs { for pid in harness.processes(ofRun: runID) { kill(pid, SIGKILL) } }
    }

    @Test func aTimeoutKillsTheProcessesThatLeftTheRunsGroup() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // Long enough for the escapee to be seen before the timeout kills it.
        try await harness.defineOffline(try harness.commandTask("escaper", Self.escaping, every: 86_400) {
            $0.timeoutSeconds = 5
            $0.graceSeconds = 0.3
        })
        let engine = harness.engine()
        try await engine.start()
        let runID = try await escapedRun("escaper", harness, engine)
        defer { cleanUp([runID], harness) }
        #expect(await harness.wait { try harness.entries().finishedRuns.count == 1 })
        #expect(try harness.entries().finishedRuns.first?.outcome == .timedOut)
        #expect(await harness.wait { harness.processes(ofRun: runID).isEmpty }, "\(harness.processes(ofRun: runID))")
        await engine.stop()
    }

    @Test func aStopADeleteAndTheSchedulersStopKillTheProcessesThatLeftTheRunsGroup() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        for raw in ["stopped", "deleted", "shutdown"] {
            try await harness.defineOffline(try harness.commandTask(raw, Self.escaping, every: 86_400) { $0.graceSeconds = 0.3 })
        }
        let engine = harness.engine()
        try await engine.start()
        var runIDs: [String] = []
        defer { cleanUp(runIDs, harness) }
        for (raw, command) in [("stopped", JournalEntry.Event.taskStopRequested(harness.taskName("stopped"))),
                               ("deleted", .taskDeleted(harness.taskName("deleted")))] {
            let runID = try await escapedRun(raw, harness, engine)
            runIDs.append(runID)
            _ = try await engine.submit(command)
            #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.runID == runID } })
            #expect(await harness.wait { harness.processes(ofRun: runID).isEmpty }, "\(raw): \(harness.processes(ofRun: runID))")
        }
        let runID = try await escapedRun("shutdown", harness, engine)
        runIDs.append(runID)
        await engine.stop()
        #expect(try harness.entries().finishedRuns.first { $0.runID == runID }?.outcome == .stopped)
        #expect(await harness.wait { harness.processes(ofRun: runID).isEmpty }, "\(harness.processes(ofRun: runID))")
    }
}
