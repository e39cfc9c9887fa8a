import Foundation
import KeijiCore
import KeijiJournal
import Synchronization
import Testing

@testable import KeijiScheduler

/// A journal whose syncs fail (EIO) once ``failFromNow()`` is called, as a dying disk's.
final class FailingSyncJournalIO: InterceptedSyncJournalIO, @unchecked Sendable {
    private let failing = Mutex(false)

    func failFromNow() { failing.withLock { $0 = true } }

    override func beforeSync() throws {
        if failing.withLock({ $0 }) { throw JournalError(.io, "'fdatasync' failed (injected)", errno: EIO) }
    }
}

/// A node of a cluster (one scheduler engine on the test PostgreSQL server) whose journal or database fails.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"] != nil || ProcessInfo.processInfo.environment["CI"] == "true",
                "no PostgreSQL test server: run under scripts/test-postgres (sets KEIJI_TEST_POSTGRES_URL)"))
struct ClusterNodeFailureTests {
    /// A run whose end the failed journal could not make durable keeps its slot's claim unfinished, and the stop
    /// that follows does not mark the node stopped: the node's restart finds the run interrupted in its journal
    /// and settles the claim by it, or the other nodes take it over as a dead node's, re-run as the task's
    /// policy says. Marked finished, as it was, the claim forbade that re-run (the restart reported "re-run" and
    /// nothing ran); marked stopped, the others ran it as a run that never began.
    @Test func aRunWhoseEndTheJournalCouldNotRecordKeepsItsClaim() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let url = try harness.joinTestCluster()
        defer { harness.dropTestCluster(url) }
        // Its run goes on until the journal fails (the gate): its end, right after, is the first record to fail (the next
        // slot is 10 s away; one that comes before is skipped and journaled before the failure).
        let gate = harness.home + "/go"
        try await harness.defineOffline(try harness.commandTask("slow", "while [ ! -e '\(gate)' ]; do sleep 0.05; done", every: 10) {
            $0.rerunInterrupted = true
        })
        let io = FailingSyncJournalIO()
        let engine = harness.engine(journalIO: io)
        try await engine.start()
        let name = harness.taskName("slow")
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == name } }, "a slot of slow began")
        io.failFromNow()
        FileManager.default.createFile(atPath: gate, contents: nil)
        #expect(await harness.wait { await engine.hasFailed }, "the run's end failed the journal")
        let ended = ContinuousClock.now
        // Finish marks go within ClusterLink.finishDelay (100 ms) of a run's end; fifteen times that without one.
        _ = await harness.wait(upTo: .seconds(1.5)) { ContinuousClock.now - ended > .seconds(1.5) }
        let claims = try PostgresConnection(url: url).query("SELECT slot, finished FROM keiji_claims WHERE task = 'slow'")
        #expect(!claims.isEmpty && claims.allSatisfy { $0[1] == "f" }, "the claim stays unfinished: \(claims)")
        // The stop (the daemon's watchdog stops a failed engine) does not mark the node stopped: the other nodes would
        // take that claim over as a run that never began, and run it whatever the task's rerunInterrupted says.
        await engine.stop()
        let node = try PostgresConnection(url: url).query("SELECT stopped FROM keiji_nodes WHERE name = 'node-a'")
        #expect(node.first?.first == "f", "the node is not marked stopped: \(node)")
        let after = try PostgresConnection(url: url).query("SELECT finished FROM keiji_claims WHERE task = 'slow'")
        #expect(after.allSatisfy { $0[0] == "f" }, "the claim is still unfinished: \(after)")
    }

    /// A restart whose lookup of this node's unfinished claims fails stops before it joins or journals anything, as
    /// a start whose database cannot be opened does. It went on before, with those claims unsettled: the claims of
    /// runs that had ended stayed unfinished while the node lived, and once it stopped, another node took them over
    /// as never begun and ran those slots again. (Joined, a refused start would leave the node alive to the others
    /// until its heartbeat was old, and then a dead node whose claims they take over as interrupted.)
    @Test func aRestartThatCannotLookUpItsClaimsStopsBeforeJournalingAnything() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let url = try harness.joinTestCluster()
        defer { harness.dropTestCluster(url) }
        try await harness.defineOffline(try harness.commandTask("tick", "true", every: 3600))
        // The clean stop's database steps get more than the 5 s a stop allows them: on a loaded machine (the suite's
        // parallel tests) they ran past it once, and the stop then rightly left the node unmarked.
        let first = harness.engine(stopDatabaseBound: .seconds(60))
        try await first.start()
        await first.stop()
        let before = try harness.entries().count
        func node() throws -> [[String?]] { try PostgresConnection(url: url).query("SELECT stopped, started_at FROM keiji_nodes") }
        let stopped = try node()
        #expect(stopped.first?.first == "t", "the clean stop marked the node stopped: \(stopped)")
        // The lookup's statement fails (a column it reads is gone); joining and the heartbeat do not read it.
        _ = try PostgresConnection(url: url).query("ALTER TABLE keiji_claims RENAME COLUMN taken_from TO taken_from_away")
        do {
            let second = harness.engine()
            try await second.start()
            Issue.record("the restart went on without this node's claims")
            await second.stop()
        } catch {
            #expect("\(error)".hasPrefix("cannot look up this node's unfinished claims: "), "\(error)")
        }
        #expect(try harness.entries().count == before, "nothing was journaled")
        #expect(try node() == stopped, "the node did not join: it is still marked stopped")
        _ = try PostgresConnection(url: url).query("ALTER TABLE keiji_claims RENAME COLUMN taken_from_away TO taken_from")
        let third = harness.engine()
        let report = try await third.start()
        #expect(report.previousShutdown == .clean, "the failed start left no mark: \(report.previousShutdown)")
        await third.stop()
    }
}
