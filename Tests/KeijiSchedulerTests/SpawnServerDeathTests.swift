import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The real `keiji-scheduler` and its keiji-spawn-server: kill -9 of the helper ends its runs as failed,
/// kills them and starts a new helper that goes on running tasks; kill -9 of the scheduler makes the helper
/// kill every group it started and exit. No process of any run survives either.
struct SpawnServerDeathTests {
    /// The scheduler's keiji-spawn-server children (their `comm` is cut to 15 characters).
    static func helpers(of scheduler: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.range(of: ") ", options: .backwards)
            else { return nil }
            let fields = stat[close.upperBound...].split(separator: " ")
            guard stat.contains("(keiji-spawn-ser)"), fields.count > 1, fields[0] != "Z", pid_t(fields[1]) == scheduler else { return nil }
            return pid
        }
    }

    @Test func killNineOfTheHelperAndThenOfTheSchedulerLeavesNothingRunning() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        // Neither task continues on error: a run the helper takes with it is interrupted, which is no failure of
        // the task's, so both go on (a second sleeper run, more ticker runs) without a resolve.
        try await harness.defineOffline(try harness.commandTask("sleeper", "sleep 300 & sleep 300") { $0.graceSeconds = 1 })
        try await harness.defineOffline(try harness.commandTask("ticker", "true"))
        let scheduler = try harness.startScheduler()
        defer {
            kill(scheduler.processIdentifier, SIGKILL)
            scheduler.waitUntilExit()
        }
        let schedulerPID = scheduler.processIdentifier

        func sleeperRuns() throws -> [RunStart] { try harness.entries().startedRuns.filter { $0.task.rawValue == "sleeper" } }
        #expect(await harness.wait { try !sleeperRuns().isEmpty && harness.processes(ofRun: sleeperRuns()[0].runID).count >= 2 })
        let first = try sleeperRuns()[0]
        let helper = try #require(Self.helpers(of: schedulerPID).first, "the scheduler runs a keiji-spawn-server")
        kill(helper, SIGKILL)

        #expect(await harness.wait {
            try harness.entries().finishedRuns.contains {
                $0.runID == first.runID && $0.outcome == .interrupted && ($0.message ?? "").contains("spawn server (pid \(helper)) was killed by signal 9")
            }
        }, "the run the helper took with it is recorded as interrupted, with the reason")
        #expect(await harness.wait { harness.processes(ofRun: first.runID).isEmpty }, "nothing of it stays running")
        let tickerDoneBefore = try harness.entries().finishedRuns.filter { $0.task.rawValue == "ticker" && $0.outcome == .succeeded }.count
        #expect(await harness.wait {
            try harness.entries().finishedRuns.filter { $0.task.rawValue == "ticker" && $0.outcome == .succeeded }.count > tickerDoneBefore + 1
        }, "a new helper goes on running tasks")
        let newHelper = try #require(Self.helpers(of: schedulerPID).first)
        #expect(newHelper != helper)

        // Now the scheduler dies: the helper kills the runs it started and exits.
        #expect(await harness.wait { try sleeperRuns().count >= 2 && !harness.processes(ofRun: sleeperRuns().last!.runID).isEmpty })
        let second = try #require(try sleeperRuns().last)
        kill(schedulerPID, SIGKILL)
        scheduler.waitUntilExit()
        #expect(await harness.wait { harness.processes(ofRun: second.runID).isEmpty }, "the runs died with the scheduler")
        #expect(await harness.wait { !LiveProcess.isRunning(newHelper) }, "the helper exited")
    }
}
