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
        let interrupted = entries.compactMap { if case .runInterrupted(let id, _, _, _) = $0.event { id } else { nil } }
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
            #expect(await harness.wait { harness.processes(ofRun: run.runID).isEmpty },
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
        // `once` runs the newest missed slot, unless a ticker run was in flight at the kill (a loaded machine can
        // hold one for a while): its re-run then covers the missed slots and no catch-up run is added.
        let tickerRerun = interrupted["ticker"] == "re-run"
        #expect((missed["ticker"]?.count ?? 0) >= 2 && missed["ticker"]?.runs == (tickerRerun ? 0 : 1) && missed["ticker"]?.policy == .once,
                "\(String(describing: missed["ticker"])), ticker re-run: \(tickerRerun)")
        #expect((missed["skipper"]?.count ?? 0) >= 2 && missed["skipper"]?.runs == 0)
        #expect(missed["sleeper"] == nil || missed["sleeper"]?.runs == 0, "the re-run covers the sleeper's slots")
        #expect(await engine.state.tasks[harness.taskName("norerun")].map { !$0.isError } == true)
        // The interrupted run is over (norerun's next slot, a second later, may already have started a new one).
        let interruptedNorerun = Set(inFlight.filter { $0.task.rawValue == "norerun" }.map(\.runID))
        #expect(await engine.state.activeRuns.keys.allSatisfy { !interruptedNorerun.contains($0) }, "nothing stays running")
        // The report is journaled and written for `keiji system --status`.
        #expect(try harness.entries().contains { if case .recoveryCompleted = $0.event { true } else { false } })
        let saved = try JSONDecoder().decode(RecoveryReport.self, from: Data(contentsOf: URL(fileURLWithPath: harness.workspace.recoveryReportFile)))
        #expect(saved == report)
        // The view agrees with the state (once it has caught up: firing does not wait for it). Read again if a new
        // slot of norerun starts between the flush and the read, as it may on a loaded machine.
        let db = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        #expect(await harness.wait {
            await engine.waitForView()
            let running = await engine.state.isRunning(harness.taskName("norerun"))
            return try db.rows("SELECT IsRunning FROM task_models WHERE Name = 'norerun'") == [[running ? "1" : "0"]]
        })
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
        // The probe: each run appends its task, slot and run ID to a file keiji knows nothing about, so an
        // execution counts even when the journal never heard of it.
        let probe = harness.home + "/probe.txt"
        func probed(_ task: String, then command: String) -> String {
            "echo \"\(task) $KEIJI_SLOT $KEIJI_RUN_ID\" >> '\(probe)'; \(command)"
        }
        try await harness.defineOffline(try harness.commandTask("busy", probed("busy", then: "sleep 0.3")))
        try await harness.defineOffline(try harness.commandTask("quick", probed("quick", then: "true")))
        var commands = 2
        for round in 0..<4 {
            let startedBefore = try harness.entries().startedRuns.count
            let scheduler = try launch(harness)
            // Kill while runs are going: once this life has started one, a little later each round.
            #expect(await harness.wait { try harness.entries().startedRuns.count > startedBefore })
            try await Task.sleep(for: .milliseconds(100 + 300 * round))
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
        try checkExecutions(harness, probe: probe)
    }

    /// What the probe saw against what the journal intended: every execution is a journaled run of that task
    /// and slot (write-ahead), no run executes twice, and a slot executes at most once per intended attempt
    /// (its first run, plus a re-run per interrupted run and a retry per non-final failure).
    func checkExecutions(_ harness: SchedulerHarness, probe: String) throws {
        let entries = try harness.entries()
        let starts = Dictionary(uniqueKeysWithValues: entries.startedRuns.map { ($0.runID, $0) })
        let interrupted = Set(entries.compactMap { if case .runInterrupted(let id, _, _, _) = $0.event { id } else { nil } })
        let retried = Set(entries.finishedRuns.filter { !$0.final }.map(\.runID))
        func key(_ start: RunStart) -> String { "\(start.task.rawValue) \(start.slot.map(ISO8601.string(fromSeconds:)) ?? "")" }
        var intended: [String: Int] = [:]
        var firings: [String: Int] = [:]
        for start in starts.values where [.schedule, .catchUp].contains(start.trigger) {
            intended[key(start), default: 0] += 1
            firings[key(start), default: 0] += 1
        }
        #expect(firings.values.allSatisfy { $0 == 1 }, "a slot is fired once: \(firings.filter { $0.value > 1 })")
        for start in starts.values where interrupted.contains(start.runID) || retried.contains(start.runID) {
            intended[key(start), default: 0] += 1
        }
        let lines = try String(contentsOfFile: probe, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty, "the tasks ran")
        var executions: [String: Int] = [:]
        var runsSeen: Set<String> = []
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 3, "probe line \(line)")
            let (task, slot, runID) = (fields[0], fields[1], fields[2])
            #expect(runsSeen.insert(runID).inserted, "run \(runID) executed twice")
            let start = starts[runID]
            #expect(start?.task.rawValue == task && start?.slot.map(ISO8601.string(fromSeconds:)) == slot,
                    "run \(runID) (\(task), slot \(slot)) executed without its run.started in the journal")
            executions["\(task) \(slot)", default: 0] += 1
        }
        for (slot, count) in executions {
            #expect(count <= intended[slot, default: 0], "\(slot) executed \(count) times, intended \(intended[slot, default: 0])")
        }
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
