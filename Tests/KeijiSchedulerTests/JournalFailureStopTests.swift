import Foundation
import KeijiBus
import KeijiCore
import KeijiJournal
import Synchronization
import Testing

@testable import KeijiScheduler

/// The real journal I/O on a disk that is full from the moment the test says: every write fails with ENOSPC.
final class FullDiskJournalIO: InterceptedSyncJournalIO, @unchecked Sendable {
    private let full = Mutex(false)

    func fill() { full.withLock { $0 = true } }

    override func beforeWrite() throws {
        if full.withLock({ $0 }) { throw JournalError(.io, "'pwrite' failed (injected): No space left on device", errno: ENOSPC) }
    }
}

/// A scheduler whose journal fails stops all work; what it answers and logs says why, once, and what to do.
struct JournalFailureStopTests {
    /// The command was answered "the journal stopped after an I/O error and must be reopened: 'pwrite' failed on fd 11
    /// (errno 28: No space left on device) (errno 28: No space left on device)", and the log then ended "scheduler
    /// stopped cleanly", which is what `keiji system --status` reads to say why the scheduler is down.
    @Test func aCommandOnAFullDiskIsAnsweredWithTheFileAndTheReasonAndTheStopIsNotCalledClean() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let io = FullDiskJournalIO()
        let engine = harness.engine(spawn: false, journalIO: io)
        try await engine.start()
        io.fill()
        let definition = try harness.commandTask("t", "true", every: 3600)
        let reply = await engine.handle(try BusRequest(id: "r1", event: .taskSaved(definition, taskID: "u1")))
        let text = try #require(reply.error)
        let segment = harness.workspace.journalDirectory + "/seg-"
        #expect(!reply.ok && text.hasPrefix("cannot append to the journal (\(segment)"), "\(text)")
        #expect(text.hasSuffix(".jnl): No space left on device; the scheduler has stopped (fix that, then run keiji system --start)"), "\(text)")
        #expect(!text.contains("errno") && !text.contains("fd "), "\(text)")
        let later = await engine.handle(try BusRequest(id: "r2", event: .taskDisabled(definition.name)))
        #expect(later.error == text, "a later command is answered with the same failure")
        #expect(await engine.state.tasks.isEmpty, "the command was not applied")

        await engine.stop()
        let lines = try LogFile(service: "scheduler", workspace: harness.workspace, settings: harness.settings).lastLines(20)
        #expect(!lines.contains { $0.hasSuffix("scheduler stopped cleanly") }, "\(lines)")
        let stop = try #require(JournalFailureStop.lastStop(in: lines), "\(lines)")
        #expect(stop.contains(" after its journal failed: cannot append to the journal (\(segment)") && stop.hasSuffix(": No space left on device"), "\(stop)")
    }
}
