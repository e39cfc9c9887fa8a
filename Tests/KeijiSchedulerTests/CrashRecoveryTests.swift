import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// kill -9 of the real `keiji-scheduler`, then a restart: the recovery report names every interrupted run
/// and missed slot, no completed run is recorded twice, no acknowledged command is lost, no task stays
/// "running" (the original's worst bug), and the dead scheduler's task processes died with it.
struct CrashRecoveryTests {
    func launch(_ harness: SchedulerHarness) throws -> Process {
        let binary = try #require(schedulerBinary(), "keiji-scheduler is built with the tests")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = harness.home
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    func killHard(_ process: Process) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func checkInvariants(_ harness: SchedulerHarness, commands: Int) throws {
        let entries = try harness.entries()
        let finished = entries.finishedRuns.map(\.runID)
        #expect(finished.count == Set(finished).count, "no run is recorded as finished twice")
        let interrupted = entries.compactMap { if case .runInterrupted(let id, _, _) = $0.event { id } else { nil } }
        #expect(Set(finished).isDisjoint(with: interrupted), "a run is either finished or interrupted, never both")
        #expect(entries.filter(\.isCommand).count >= commands, "every acknowledged command is still in the journal")
    }

    @Test func killNineDuringRunsIsRecoveredAndReported() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("sleeper", "echo started; sleep 30"))
        try await harness.defineOffline(try harness.commandTask("norerun", "sleep 30") {
            $0.rerunInterrupted = false
            $0.catchUp = .skip  // so "nothing stays running" is about the interrupted run, not a fresh catch-up run
        })
        try await harness.defineOffline(try harness.commandTask("ticker", "true") { $0.catchUp = .once })
        try await harness.defineOffline(try harness.commandTask("skipper", "true") { $0.catchUp = .skip })

        let scheduler = try launch(harness)
        #expect(await harness.wait {
            let entries = try harness.entries()
            let started = Set(entries.startedRuns.map(\.task.rawValue))
            return started.isSuperset(of: ["sleeper", "norerun"]) && entries.finishedRuns.contains { $0.task.rawValue == "ticker" }
        })
        let inFlight = try harness.entries().startedRuns.filter { ["sleeper", "norerun"].contains($0.task.rawValue) }
        killHard(scheduler)
        for run in inFlight {
            #expect(await harness.wait(upTo: .seconds(3)) { harness.processes(ofRun: run.runID).isEmpty },
                    "the task process of run \(run.runID) died with the scheduler")
        }
        try await Task.sleep(for: .milliseconds(2500))  // slots pass while it is down

        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.previousShutdown == .crash)
        let interrupted = Dictionary(uniqueKeysWithValues: report.interruptedRuns.map { ($0.task.rawValue, $0.action) })
        #expect(interrupted["sleeper"] == "re-run")
        #expect(interrupted["norerun"] == "not re-run (policy)")
        let missed = Dictionary(uniqueKeysWithValues: report.missedSlots.map { ($0.task.rawValue, $0) })
        #expect((missed["ticker"]?.count ?? 0) >= 2 && missed["ticker"]?.runs == 1 && missed["ticker"]?.policy == .once)
        #expect((missed["skipper"]?.count ?? 0) >= 2 && missed["skipper"]?.runs == 0)
        #expect(missed["sleeper"] == nil || missed["sleeper"]?.runs == 0, "the re-run covers the sleeper's slots")
        #expect(await engine.state.tasks[harness.taskName("norerun")].map { !$0.isError } == true)
        #expect(await !engine.state.isRunning(harness.taskName("norerun")), "nothing stays running")
        // The report is journaled and written for `keiji system --status`.
        #expect(try harness.entries().contains { if case .recoveryCompleted = $0.event { true } else { false } })
        let saved = try JSONDecoder().decode(RecoveryReport.self, from: Data(contentsOf: URL(fileURLWithPath: harness.workspace.recoveryReportFile)))
        #expect(saved == report)
        // The view agrees.
        let db = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        #expect(try db.rows("SELECT IsRunning FROM task_models WHERE Name = 'norerun'") == [["0"]])
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.trigger == .recovery && $0.task.rawValue == "sleeper" } })
        await engine.stop()
        try checkInvariants(harness, commands: 4)
    }

    @Test func killNineWhileIdleLosesNothing() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("hourly", "true", every: 3600))
        let scheduler = try launch(harness)
        #expect(await harness.wait { try harness.entries().contains { if case .recoveryCompleted = $0.event { true } else { false } } })
        killHard(scheduler)
        // A command while the scheduler is down goes straight to the journal.
        try await OfflineCommands.submit(.taskDisabled(harness.taskName("hourly")), workspace: harness.workspace, settings: harness.settings)
        let engine = harness.engine()
        let report = try await engine.start()
        #expect(report.previousShutdown == .crash && report.interruptedRuns.isEmpty && report.missedSlots.isEmpty)
        #expect(await engine.state.tasks[harness.taskName("hourly")]?.isDisabled == true, "the offline command was not lost")
        await engine.stop()
        try checkInvariants(harness, commands: 2)
    }

    @Test func repeatedKillsNeverRecordARunTwice() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("busy", "sleep 0.3"))
        try await harness.defineOffline(try harness.commandTask("quick", "true"))
        var commands = 2
        for round in 0..<4 {
            let scheduler = try launch(harness)
            try await Task.sleep(for: .milliseconds(700 + 300 * round))
            killHard(scheduler)
            try await OfflineCommands.submit(round % 2 == 0 ? .taskDisabled(harness.taskName("quick")) : .taskEnabled(harness.taskName("quick")),
                                             workspace: harness.workspace, settings: harness.settings)
            commands += 1
            try checkInvariants(harness, commands: commands)
        }
        let engine = harness.engine()
        let restartedAt = Int64(Date().timeIntervalSince1970 * 1000)
        let report = try await engine.start()
        #expect(report.previousShutdown == .crash)
        // Every run in progress now is a recovery re-run or a fresh slot: none is a leftover of the crashes.
        #expect(await engine.state.activeRuns.values.allSatisfy { $0.start.trigger == .recovery || $0.startedAt >= restartedAt })
        await engine.stop()
        try checkInvariants(harness, commands: commands)
    }
}

func schedulerBinary() -> String? {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let packageBuild = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug")
    for directory in [bundleDirectory, bundleDirectory.deletingLastPathComponent(), packageBuild] {
        let candidate = directory.appendingPathComponent("keiji-scheduler").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
