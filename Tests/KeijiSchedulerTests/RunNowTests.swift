import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

extension SchedulerEngine {
    /// Whether `name`'s live timer entry is a slot (not a manual trigger), as armed for a task with none queued.
    func armsASlot(_ name: TaskName) -> Bool {
        guard let generation = armed[name] else { return false }
        return timers.entries.contains { $0.task == name && $0.generation == generation && !$0.isManual }
    }
}

/// Manual runs (`keiji task --run`) respect the overlap policy and the disabled flag even when the journal
/// already holds triggers that today's `--run` would refuse (journals written by older versions), and each
/// trigger runs once.
struct RunNowTests {
    /// Appends records as an older CLI did, without today's checks.
    func appendUnchecked(_ events: [JournalEntry.Event], _ harness: SchedulerHarness) async throws {
        let journal = try Journal.open(directory: harness.workspace.journalDirectory)
        for event in events {
            _ = try await journal.append(try JournalEntry(at: Int64(Date().timeIntervalSince1970 * 1000), event).encoded())
        }
        try await journal.close()
    }

    @Test func queuedRunsOfASkipTaskRunOneAtATime() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("single", "sleep 0.5", every: 3600))
        let name = harness.taskName("single")
        try await appendUnchecked([.taskTriggered(name), .taskTriggered(name), .taskTriggered(name)], harness)
        let engine = harness.engine()
        try await engine.start()
        #expect(await harness.wait(upTo: .seconds(120)) { try harness.entries().finishedRuns.count == 3 })
        await engine.stop()
        // Each run.started comes after the previous run's run.finished: never two copies at once.
        var active = 0
        var most = 0
        for entry in try harness.entries() {
            if case .runStarted = entry.event { active += 1 }
            if case .runFinished = entry.event { active -= 1 }
            most = max(most, active)
        }
        #expect(most == 1, "at most one run of a skip task at a time")
    }

    @Test func aTriggerJournaledWhileDisabledDoesNotRunOnEnable() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("paused", "true", every: 3600))
        let name = harness.taskName("paused")
        try await appendUnchecked([.taskDisabled(name), .taskTriggered(name), .taskTriggered(name), .taskEnabled(name)], harness)
        try await harness.defineWitness()
        let engine = harness.engine()
        let startedAt = SchedulerHarness.nowSeconds
        try await engine.start()
        #expect(await engine.state.tasks[name]?.pendingTriggers == 0)
        // A trigger still owed fires at the timer's first wake, before any slot.
        #expect(await harness.witnessRan(fromSlot: startedAt + 1))
        #expect(try harness.entries().startedRuns.filter { $0.task == name }.isEmpty, "nothing piled up while disabled")
        await engine.stop()
    }

    /// Across a crash: a trigger journaled but not started runs once after the restart; one whose run started does
    /// not run again (an interrupted one is re-run by its policy, as a recovery run, not as a second manual run).
    @Test func afterACrashEachTriggerNotStartedRunsOnceAndNoneStartedRunsAgain() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("many", "true", every: 3600) { $0.overlap = .allow })
        let name = harness.taskName("many")
        let (done, cut) = ("aaaaaaaaaaaa", "bbbbbbbbbbbb")
        try await appendUnchecked([
            .schedulerStarted(pid: 1),
            .taskTriggered(name), .taskTriggered(name), .taskTriggered(name), .taskTriggered(name),
            .runStarted(RunStart(runID: done, task: name, slot: nil, attempt: 1, trigger: .manual)),
            .runFinished(RunEnd(runID: done, task: name, outcome: .succeeded, exitCode: 0, signal: nil, durationMs: 1, latenessMs: 0,
                                final: true, message: nil)),
            .runStarted(RunStart(runID: cut, task: name, slot: nil, attempt: 1, trigger: .manual)),
        ], harness)
        let before = try harness.entries().count
        let engine = harness.engine(spawn: false)
        try await engine.start()
        #expect(await harness.wait {
            let idle = await engine.armsASlot(name)
            return try Array(harness.entries().dropFirst(before)).finishedRuns.count == 3 && idle
        })
        await engine.stop()
        let started = Array(try harness.entries().dropFirst(before)).startedRuns
        #expect(started.filter { $0.trigger == .manual }.count == 2, "the two triggers not started: \(started)")
        #expect(started.filter { $0.trigger == .recovery }.count == 1, "the interrupted run, re-run: \(started)")
    }
}
