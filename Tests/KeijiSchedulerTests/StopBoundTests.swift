import Foundation
import KeijiCore
import Synchronization
import Testing

@testable import KeijiScheduler

/// A stop whose database does not answer ends within its bound (``SchedulerConfiguration/stopDatabaseBound``).
struct StopBoundTests {
    /// A query view write that never returns (a PostgreSQL view behind a lock, a server that hangs) holds the engine's
    /// background thread: the stop gives the view up at its bound and still ends, with a checkpoint and a clean-stop
    /// mark. The checkpoint's encoding queued behind that write on the same thread, and the scheduler hung after
    /// `stopping: 0 runs in progress` until `keiji system --stop` killed it (`ClusterTests`' stop under a locked
    /// database, at times under load).
    @Test func aStopEndsWhileAViewWriteHoldsTheBackgroundThread() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("tick", "true"))
        let engine = harness.engine(spawn: false, stopDatabaseBound: .milliseconds(200))
        try await engine.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.count >= 1 })
        let write = HungWrite()
        let held = Task { try? await engine.background.run { write.hang() } }
        #expect(await harness.wait { write.hasBegun })
        let stopped = Atomic(false)
        let stop = Task {
            await engine.stop()
            stopped.store(true, ordering: .releasing)
        }
        let ended = await harness.wait { stopped.load(ordering: .acquiring) }
        write.answer()
        await stop.value
        await held.value
        #expect(ended, "the stop waited for the view's write")
        let entries = try harness.entries()
        #expect(entries.contains { if case .schedulerStopped(clean: true) = $0.event { true } else { false } }, "a clean-stop mark")
        let files = try FileManager.default.contentsOfDirectory(atPath: harness.workspace.journalDirectory)
        #expect(files.contains { $0.hasSuffix(".ckpt") }, "a checkpoint: \(files)")
        let lines = try LogFile(service: "scheduler", workspace: harness.workspace, settings: harness.settings).lastLines(20)
        #expect(lines.contains { $0.contains("the database did not answer within 0.2 seconds") }, "\(lines)")
    }
}

/// A write that does not return until ``answer()``.
private final class HungWrite: Sendable {
    private let state = Mutex((begun: false, answered: false))
    private let answered = DispatchSemaphore(value: 0)

    var hasBegun: Bool { state.withLock { $0.begun } }

    func hang() {
        state.withLock { $0.begun = true }
        answered.wait()
    }

    func answer() { answered.signal() }
}
