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

/// A node of a cluster (one scheduler engine on the test PostgreSQL server) whose journal fails.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"] != nil || ProcessInfo.processInfo.environment["CI"] == "true",
                "no PostgreSQL test server: run under scripts/test-postgres (sets KEIJI_TEST_POSTGRES_URL)"))
struct ClusterNodeJournalFailureTests {
    /// A run whose end the failed journal could not make durable keeps its slot's claim unfinished, and the stop
    /// that follows does not mark the node stopped: the node's restart finds the run interrupted in its journal
    /// and settles the claim by it, or the other nodes take it over as a dead node's, re-run as the task's
    /// policy says. Marked finished, as it was, the claim forbade that re-run (the restart reported "re-run" and
    /// nothing ran); marked stopped, the others ran it as a run that never began.
    @Test func aRunWhoseEndTheJournalCouldNotRecordKeepsItsClaim() async throws {
        let server = try #require(ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"].flatMap(URL.init(string:)),
                                  "KEIJI_TEST_POSTGRES_URL is not set: scripts/test starts the server")
        let database = "keiji_sched_" + UUID().uuidString.prefix(8).lowercased()
        _ = try PostgresConnection(url: server).query("CREATE DATABASE \(database)")
        defer { _ = try? PostgresConnection(url: server).query("DROP DATABASE IF EXISTS \(database) WITH (FORCE)") }
        var components = try #require(URLComponents(url: server, resolvingAgainstBaseURL: false))
        components.path = "/" + database
        let url = try #require(components.url)

        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try (Settings.defaultFileContents(timeZone: "UTC").replacingOccurrences(of: "\nDB_URL=default\n", with: "\nDB_URL=\(url.absoluteString)\n")
             + "\nNODE_NAME=node-a\n")
            .write(toFile: harness.workspace.settingsFile, atomically: true, encoding: .utf8)
        harness.settings = try Settings.load(from: harness.workspace.settingsFile)
        // Nothing else is journaled while its run goes on (the next slot is 10 s away): its end is the first record to
        // fail. Its 5 s leave the test ample time to fail the journal before the end.
        try await harness.defineOffline(try harness.commandTask("slow", "sleep 5", every: 10) { $0.rerunInterrupted = true })
        let io = FailingSyncJournalIO()
        let engine = harness.engine(journalIO: io)
        try await engine.start()
        let name = harness.taskName("slow")
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.task == name } }, "a slot of slow began")
        io.failFromNow()
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
}
