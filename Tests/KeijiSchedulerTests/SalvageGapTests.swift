import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// A `salvage` start keeps the intact records after the damage, with gaps where records were lost: the report must
/// name those LSNs, and recovery must believe what the kept records say.
struct SalvageGapTests {
    /// The journal's only segment.
    func segment(_ harness: SchedulerHarness) throws -> String {
        let directory = harness.workspace.journalDirectory
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasPrefix("seg-") && $0.hasSuffix(".jnl") })
        return directory + "/" + name
    }

    /// A journal whose first run's `run.finished` is in a damaged frame, followed by a later run of its task and by
    /// a run of another task that a crash interrupted. Returns the lost record's LSN and what the tests look for.
    func journalLosingARunsEnd(_ harness: SchedulerHarness) async throws
        -> (lost: UInt64, lostEnd: String, slot: Int64, skipper: TaskDefinition, later: TaskDefinition) {
        let skipper = try harness.commandTask("skipper", "true", every: 3600) { $0.catchUp = .skip }
        let later = try harness.commandTask("later", "true", every: 3600) { $0.catchUp = .skip }
        try await harness.defineOffline(skipper)
        try await harness.defineOffline(later)

        // One frame a record (each append waits for its sync), so a flipped byte takes out one record.
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: harness.workspace.journalDirectory, options: options)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let slot = now / 1000 / 3600 * 3600 - 7200
        let lostEnd = "lostend-0123456789"
        var lsns: [String: UInt64] = [:]
        func append(_ key: String, _ event: JournalEntry.Event) async throws {
            lsns[key] = try await journal.append(try JournalEntry(at: now, event).encoded())
        }
        try await append("started", .schedulerStarted(pid: 1))
        try await append("start1", .runStarted(RunStart(runID: lostEnd, task: skipper.name, slot: slot, attempt: 1, trigger: .schedule)))
        try await append("end1", .runFinished(RunEnd(runID: lostEnd, task: skipper.name, outcome: .succeeded, exitCode: 0, signal: nil,
                                                     durationMs: 1000, latenessMs: 0, final: true, message: nil)))
        try await append("start2", .runStarted(RunStart(runID: "second", task: skipper.name, slot: slot + 3600, attempt: 1, trigger: .schedule)))
        try await append("end2", .runFinished(RunEnd(runID: "second", task: skipper.name, outcome: .succeeded, exitCode: 0, signal: nil,
                                                     durationMs: 1000, latenessMs: 0, final: true, message: nil)))
        // Started after the only lost record, and never ended: the scheduler crashed during it.
        try await append("start3", .runStarted(RunStart(runID: "crashed", task: later.name, slot: slot, attempt: 1, trigger: .schedule)))
        try await journal.close()

        // Flip a byte of the frame holding the first run's end: the run ID's last occurrence in the segment.
        let path = try segment(harness)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let needle = Array(lostEnd.utf8)
        let at = try #require((0...(bytes.count - needle.count)).last { Array(bytes[$0..<($0 + needle.count)]) == needle })
        bytes[at + 3] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (try #require(lsns["end1"]), lostEnd, slot, skipper, later)
    }

    /// The report said `LSNs 20…56` (the cut) and `salvaged 21…56` "with gap frames for the rest", and the operator had
    /// to subtract: a lost `task.disabled` silently re-enables a task. The repair lines, `system --status` and the
    /// scheduler's log now name the lost LSNs.
    @Test func theReportNamesExactlyTheLSNsSalvageLost() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let lost = try await journalLosingARunsEnd(harness).lost
        let engine = harness.engine(spawn: false, recoveryMode: .salvage)
        let report = try await engine.start()
        await engine.stop()
        #expect(report.journal.lostLSNs == [LSNRange(lost...lost)], "\(report.journal.repairs)")
        #expect(report.journal.repairs.contains { $0.hasPrefix("recordsSalvaged") && $0.contains("lost LSNs \(lost)…\(lost)") }, "\(report.journal.repairs)")
        let lines = report.entries(instant: ISO8601.string(fromMilliseconds:), slot: ISO8601.string(fromSeconds:))
        #expect(lines.contains { $0.label == "LOST" && $0.value.contains("LSNs \(lost)…\(lost)") }, "\(lines)")
        #expect(SchedulerEngine.summary(of: report).contains("acknowledged records lost at LSNs \(lost)…\(lost)"))
    }

    /// A run whose `run.finished` was in the damaged frame looked interrupted by a crash, though the salvaged records
    /// (a later run of its task, a clean stop) show it had ended: it was re-run, its skip-overlap slot ran twice, and
    /// `task --runs` showed it interrupted after a minute. A run started after every lost record is still a crash's.
    @Test func aRunWhoseEndSalvageMayHaveLostIsNotReRun() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let (lost, lostEnd, slot, skipper, later) = try await journalLosingARunsEnd(harness)
        let engine = harness.engine(spawn: false, recoveryMode: .salvage)
        let report = try await engine.start()
        let actions = Dictionary(uniqueKeysWithValues: report.interruptedRuns.map { ($0.runID, $0.action) })
        #expect(actions[lostEnd] == "not re-run (its end may be among the records salvage lost, LSNs \(lost)…\(lost))", "\(actions)")
        #expect(actions["crashed"] == "re-run", "a run started after the lost record is treated as before")
        #expect(report.interruptedRuns.filter(\.endMayBeLost).map(\.runID) == [lostEnd])

        // Its slot is not run again; the crashed run's is.
        #expect(await harness.wait { try harness.entries().startedRuns.contains { $0.trigger == .recovery && $0.task == later.name } })
        #expect(try harness.entries().startedRuns.filter { $0.task == skipper.name && $0.slot == slot }.map(\.runID) == [lostEnd])
        // Its history says its end is unknown, and the task's last outcome is still that of its later run.
        let task = try #require(await engine.state.tasks[skipper.name])
        let summary = try #require(task.recentRuns.first { $0.runID == lostEnd })
        #expect(summary.outcome == "interrupted" && summary.resultText == "interrupted (end lost)" && summary.durationMs == nil)
        #expect(summary.message == RunEnd.endLostMessage("\(lost)…\(lost)"))
        #expect(task.lastOutcome == .succeeded)
        #expect(await engine.state.activeRuns[lostEnd] == nil, "nothing stays running")
        let lines = report.entries(instant: ISO8601.string(fromMilliseconds:), slot: ISO8601.string(fromSeconds:))
        #expect(lines.contains { $0.label == "interrupted" && $0.value == "1 run(s), and 1 whose end salvage may have lost" }, "\(lines)")
        await engine.stop()
    }
}
