import Foundation
import KeijiCore
import KeijiTestSupport
import Testing

@testable import KeijiScheduler

/// A run's stdout and stderr are a pipe the spawn server relays into the task's log, not the log itself: what a run
/// does to its own output cannot truncate the log or move where keiji writes. (That its last words come before
/// keiji's end line: SpawnServerTests.anExitIsReportedOnceTheRunsOutputIsInTheLog.)
struct RunOutputTests {
    /// Runs the task `times` times, one after the other, and returns the runs' IDs in order.
    func run(_ raw: String, times: Int, _ harness: SchedulerHarness) async throws -> [String] {
        let engine = harness.engine()
        try await engine.start()
        for count in 1...times {
            _ = try await engine.submit(.taskTriggered(harness.taskName(raw)))
            #expect(await harness.waitForRunsEnded(count, by: engine))
        }
        await engine.stop()
        return try harness.entries().finishedRuns.map(\.runID)
    }

    /// The log's lines, keiji's own as `started <run>` and `ended <run>` (without their times).
    func outline(_ log: String) -> [String] {
        log.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
            guard let keiji = line.range(of: " [keiji] run ") else { return String(line) }
            let words = line[keiji.upperBound...].split(separator: " ")
            return (words.count > 1 && words[1] == "started" ? "started " : "ended ") + words[0]
        }
    }

    /// `echo … > /dev/stderr` opens the run's stderr again by its path: that was the log itself, opened again with
    /// O_TRUNC, so each run wiped every earlier line of the log, keiji's own included.
    @Test func reopeningDevStderrKeepsTheWholeLog() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("reopener", "echo a; echo b > /dev/stderr", every: 3600))
        let runs = try await run("reopener", times: 2, harness)
        let log = harness.log(of: "reopener")
        #expect(runs.count == 2 && outline(log) == runs.flatMap { ["started \($0)", "a", "b", "ended \($0)"] }, "\(log)")
    }

    /// A run that clears O_APPEND on its stdout and seeks to the start wrote over the log, and so did keiji's end line
    /// and every later run (they shared the open file description): the log read out of order.
    @Test(.enabled(if: NeededUnderCI.runs(NeededUnderCI.hasPerl))) func clearingAppendOnItsOutputCannotClobberTheLog() async throws {
        try #require(NeededUnderCI.hasPerl, "needs /usr/bin/perl (under CI=true it runs, and fails, without it)")
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // perl is in every Debian-like base system (perl-base); the constants are Linux's (F_GETFL 3, F_SETFL 4,
        // O_APPEND 02000), so no module is needed.
        let clobber = "perl -e 'fcntl(STDOUT, 4, fcntl(STDOUT, 3, 0) & ~1024); sysseek(STDOUT, 0, 0); syswrite(STDOUT, \"CLOBBER\\n\")'"
        try await harness.defineOffline(try harness.commandTask("clobberer", clobber, every: 3600))
        let runs = try await run("clobberer", times: 2, harness)
        let log = harness.log(of: "clobberer")
        #expect(runs.count == 2 && outline(log) == runs.flatMap { ["started \($0)", "CLOBBER", "ended \($0)"] }, "\(log)")
    }
}
