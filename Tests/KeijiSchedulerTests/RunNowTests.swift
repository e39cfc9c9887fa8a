import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// Manual runs (`keiji task --run`) respect the overlap policy and the disabled flag even when the journal
/// already holds triggers that today's `--run` would refuse (journals written by older versions).
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
        let engine = harness.engine()
        try await engine.start()
        #expect(await engine.state.tasks[name]?.pendingTriggers == 0)
        try await Task.sleep(for: .seconds(1))
        #expect(try harness.entries().startedRuns.isEmpty, "nothing piled up while disabled")
        await engine.stop()
    }
}
