import Foundation
import KeijiCore
import KeijiBus
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// A record the scheduler cannot apply never takes it down. Records main used to accept (a 1e16 s timeout,
/// which trapped the run's watchdog) and records that do not decode are written into a real journal, then
/// the real `keiji-scheduler` binary starts: it keeps running, the poisoned tasks are in error with the
/// reason and never run, the healthy task runs, and the recovery report lists every refused record.
struct PoisonRecordTests {
    @Test func theRealSchedulerStartsAndRunsTheHealthyTaskDespitePoisonRecords() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("healthy", "true"))

        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: harness.workspace.journalDirectory, options: options)
        var poison = try harness.commandTask("poison", "echo should-never-run")
        poison.policy.timeoutSeconds = 1e16
        var wide = try harness.commandTask("wide", "echo should-never-run")
        wide.schedule = ScheduleSpec(.every(3_000_000_000_000_000, .hours))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for definition in [poison, wide] {
            _ = try await journal.append(try JournalEntry(at: now, .taskSaved(definition, taskID: UUID().uuidString)).encoded())
        }
        _ = try await journal.append(Array(#"{"type":"task.saved","at":\#(now),"taskID":"g","definition":{"name":"garbled","schedule":{"every":[]}}}"#.utf8))
        _ = try await journal.append(Array(#"{"type":"run.finished","at":1,"run":{"garbage":true}}"#.utf8))
        try await journal.close()

        let scheduler = try harness.startScheduler()
        defer {
            if scheduler.isRunning { kill(scheduler.processIdentifier, SIGKILL) }
            scheduler.waitUntilExit()
        }

        /// The records that decode (the poison ones stay in the journal and are skipped here).
        func readable() throws -> [JournalEntry] {
            try JournalDirectory(path: harness.workspace.journalDirectory).records().compactMap { try? JournalEntry.decode($0.bytes) }
        }
        #expect(await harness.wait(upTo: .seconds(60)) {
            try readable().finishedRuns.contains { $0.task.rawValue == "healthy" && $0.outcome == .succeeded }
        }, "the healthy task runs")
        // The poisoned tasks' 1 s slots would have come by the time a later slot of the healthy task has run.
        let later = Int64(Date().timeIntervalSince1970) + 2
        #expect(await harness.wait(upTo: .seconds(60)) {
            let entries = try readable()
            let runs = Set(entries.startedRuns.filter { $0.task.rawValue == "healthy" && ($0.slot ?? 0) >= later }.map(\.runID))
            return entries.finishedRuns.contains { runs.contains($0.runID) }
        }, "the healthy task runs on")
        #expect(scheduler.isRunning, "the scheduler is still running")
        #expect(try readable().startedRuns.allSatisfy { $0.task.rawValue == "healthy" }, "no poisoned task ever ran")

        let report = try JSONDecoder().decode(RecoveryReport.self, from: Data(contentsOf: URL(fileURLWithPath: harness.workspace.recoveryReportFile)))
        let refused = report.refusedRecords ?? []
        let byTask = Dictionary(refused.compactMap { record in record.task.map { ($0.rawValue, record) } }, uniquingKeysWith: { a, _ in a })
        #expect(byTask["poison"]?.reason == "--timeout must be between 1 ms and 7 days (604800 s) (got 1e+16)")
        #expect(byTask["wide"]?.reason.hasPrefix("--every must be between 1 s and 365 days") == true)
        #expect(byTask["garbled"]?.reason.hasPrefix("does not decode") == true)
        #expect(refused.contains { $0.task == nil && $0.type == "run.finished" && $0.action == "skipped" }, "a record naming no task is listed and skipped")
        #expect(try readable().contains { entry in
            if case .recoveryCompleted(let journaled) = entry.event { journaled.refusedRecords?.count == 4 } else { false }
        }, "the journaled recovery.completed lists them too")

        let db = try SQLiteDatabase(path: harness.workspace.databaseFile, readOnly: true)
        let rows = try db.rows("SELECT Name, IsError, ErrorTxt FROM task_models ORDER BY Name")
        let view = Dictionary(uniqueKeysWithValues: rows.map { ($0[0] ?? "", ($0[1] ?? "", $0[2] ?? "")) })
        #expect(view["healthy"]?.0 == "0")
        for poisoned in ["poison", "wide", "garbled"] {
            #expect(view[poisoned]?.0 == "1", "\(poisoned) is IsError")
            #expect(view[poisoned]?.1.hasPrefix("[ refused ]: task.saved at LSN") == true, "\(poisoned): \(view[poisoned]?.1 ?? "no row")")
        }
        #expect(view["poison"]?.1.hasSuffix("--timeout must be between 1 ms and 7 days (604800 s) (got 1e+16)") == true)

        kill(scheduler.processIdentifier, SIGTERM)
        #expect(await harness.wait(upTo: .seconds(60)) { !scheduler.isRunning }, "a graceful stop still works")
        #expect(scheduler.terminationStatus == 0)
    }

    /// The bus path: a save relayed with an out-of-range value is refused by the engine with the flag and
    /// its range, nothing is journaled, and the scheduler goes on.
    @Test func theBusPathRefusesOutOfRangeDefinitions() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let engine = harness.engine(spawn: false)
        try await engine.start()
        let line = #"{"id":"r1","cmd":"save","taskID":"t","uuid":"u","definition":{"name":"t","description":"d","action":{"command":{"_0":"true"}},"schedule":{"every":3000000000000000,"unit":"hours"},"policy":{},"directory":"/tmp"}}"#
        let request = try JSONDecoder().decode(BusRequest.self, from: Data(line.utf8))
        let reply = await engine.handle(request)
        #expect(reply == .failure("r1", .rejected, "--every must be between 1 s and 365 days (got 3000000000000000h)"))
        var slow = try harness.commandTask("slow", "true")
        slow.policy.timeoutSeconds = .infinity
        let refused = await engine.handle(try BusRequest(id: "r2", event: .taskSaved(slow, taskID: "u2")))
        #expect(refused == .failure("r2", .rejected, "--timeout must be between 1 ms and 7 days (604800 s) (got inf)"))
        #expect(await engine.state.tasks.isEmpty, "nothing was journaled")
        await engine.stop()
    }

    /// The conversions a definition's values go through, fed values beyond every range: no trap.
    @Test func outOfRangeValuesReachingTheProcessLayerDoNotTrap() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        var definition = try harness.commandTask("far", "true")
        definition.policy.timeoutSeconds = 1e16
        definition.policy.graceSeconds = .nan
        let fd = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(fd) }
        let result = await RunExecutor(definition: definition, runID: "far-1", slot: nil, logDescriptor: fd, environment: EnvironmentBlock(), errorFile: nil).run(handle: RunHandle())
        #expect(result.outcome == .succeeded)

        let sleeper = Task { try await WallClock().sleep(untilMilliseconds: .max) }
        try await Task.sleep(for: .milliseconds(100))
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }
}
