import Foundation
import KeijiJournal
import Testing

@testable import KeijiCore

/// A record replay cannot apply never stops the replay: the task it names goes into error with the reason,
/// a record naming no task is skipped, every other task is untouched, and each one is listed.
struct RefusedRecordTests {
    func openJournal(_ home: TemporaryHome) throws -> Journal {
        var options = JournalOptions()
        options.idleNoteDelay = nil
        return try Journal.open(directory: home.workspace.journalDirectory, options: options)
    }

    func append(_ journal: Journal, _ event: JournalEntry.Event, at: Int64 = 1_795_000_000_000) async throws {
        _ = try await journal.append(try JournalEntry(at: at, event).encoded())
    }

    func append(_ journal: Journal, raw: String) async throws { _ = try await journal.append(Array(raw.utf8)) }

    @Test func replayPutsTasksWithUnusableRecordsInErrorAndKeepsTheRest() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let journal = try openJournal(home)
        var slow = commandTask("slow")
        slow.policy.timeoutSeconds = 1e16  // what main accepted before the ranges
        try await append(journal, .taskSaved(commandTask("good"), taskID: "id-good"))
        try await append(journal, .taskSaved(slow, taskID: "id-slow"))
        try await append(journal, .taskSaved(commandTask("odd"), taskID: "id-odd"))
        try await append(journal, raw: #"{"type":"task.saved","at":1795000000000,"taskID":"x","definition":{"name":"broken","schedule":{"every":"soon"}}}"#)
        try await append(journal, raw: #"{"type":"task.saved","at":1795000000000,"definition":{"name":"../../etc"}}"#)
        try await append(journal, raw: "not json at all")
        try await append(journal, .taskEnabled(name("odd")), at: Int64.max)
        try await append(journal, .runStarted(RunStart(runID: "r1", task: name("odd"), slot: Int64.max / 2, attempt: 1, trigger: .schedule)))
        try await append(journal, .taskResolved(name("slow")))

        let loaded = try StateLoader.load(from: journal)
        let state = loaded.state
        let good = try #require(state.tasks[name("good")])
        #expect(!good.isError && good.refusal == nil && good.lastSlot == nil, "the healthy task is untouched by the refused records")
        let refusedSlow = try #require(state.tasks[name("slow")])
        #expect(refusedSlow.isError && refusedSlow.refusal?.hasPrefix("--timeout must be between") == true)
        #expect(refusedSlow.errorText == "[ refused ]: task.saved at LSN 2: --timeout must be between 1 ms and 7 days (604800 s) (got 1e+16)")
        #expect(refusedSlow.isError, "task.resolved cannot clear a refused definition")
        let broken = try #require(state.tasks[name("broken")], "a task whose only definition does not decode is still listed")
        #expect(broken.isError && broken.errorText.contains("does not decode") && broken.refusal != nil)
        let odd = try #require(state.tasks[name("odd")])
        #expect(odd.isError && odd.refusal == nil && odd.lastSlot == nil && state.activeRuns.isEmpty,
                "a refused run record changes nothing but the error flag (resolve clears that one)")
        #expect(state.lastLSN == 9)

        let byLSN = Dictionary(uniqueKeysWithValues: loaded.refused.map { ($0.lsn ?? 0, $0) })
        #expect(loaded.refused.count == 6)
        #expect(byLSN[2]?.task == name("slow") && byLSN[2]?.action == "task set to error")
        #expect(byLSN[4]?.task == name("broken") && byLSN[4]?.action == "task set to error")
        #expect(byLSN[5]?.task == nil && byLSN[5]?.action == "skipped", "an unusable name is not recovered")
        #expect(byLSN[6]?.type == nil && byLSN[6]?.action == "skipped")
        #expect(byLSN[7]?.task == name("odd") && byLSN[7]?.reason.contains("outside 1970") == true)
        #expect(byLSN[8]?.reason.contains("slot") == true)
        #expect(CommandValidator.refusesResolve(of: name("slow"), in: state))

        // The view can be built from that state (it computes next times from the refused definitions too).
        try home.workspace.createSystemDirectories()
        let (view, fresh) = try QueryView.openOrReset(.sqlite(path: home.workspace.databaseFile), workspace: home.workspace,
                                                       defaultTimeZone: TimeZone(identifier: "UTC")!)
        try view.catchUp(with: loaded, fresh: fresh)

        // A valid definition ends the refusal.
        var fixed = commandTask("slow")
        fixed.policy.timeoutSeconds = 60
        var live = state
        Reducer.apply(JournalEntry(at: 1_795_000_100_000, .taskSaved(fixed, taskID: "id-slow")), lsn: 10, to: &live)
        #expect(live.tasks[name("slow")].map { !$0.isError && $0.refusal == nil && $0.errorText.isEmpty } == true)
        try await journal.close()
    }

    /// A checkpoint written under older rules still decodes, and what it holds is checked against today's.
    @Test func aCheckpointedDefinitionTodaysRulesRefuseIsPutInError() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let journal = try openJournal(home)
        try await append(journal, .taskSaved(commandTask("good"), taskID: "id-good"))
        var old = SchedulerState()
        Reducer.apply(JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("good"), taskID: "id-good")), lsn: 1, to: &old)
        var hourly = commandTask("ancient")
        hourly.schedule = ScheduleSpec(.every(3_000_000_000_000_000, .hours))
        old.tasks[name("ancient")] = TaskState(taskID: "id-ancient", definition: hourly, createdAt: 0, updatedAt: 0, anchor: 1_795_000_000)
        try await journal.writeCheckpoint(try StateLoader.snapshot(old), at: 1)

        let loaded = try StateLoader.load(from: journal)
        #expect(loaded.state.tasks[name("good")]?.isError == false)
        let ancient = try #require(loaded.state.tasks[name("ancient")])
        #expect(ancient.isError && ancient.errorText.hasPrefix("[ refused ]: definition in the checkpoint: --every must be between"))
        #expect(loaded.refused == [RefusedRecord(lsn: nil, type: "task.saved", task: name("ancient"), reason: ancient.refusal ?? "",
                                                 action: "task set to error")])
        try await journal.close()
    }

    /// After an upgrade over a crashed older scheduler, a record today's rules refuse may be one that scheduler had
    /// applied to the view (its LSN at or below `applied_lsn`): the start rewrites that task's row. It rewrote only the
    /// rows of tasks refused from the checkpoint, and `--list` kept showing the task scheduled while it was in error.
    @Test func aTaskRefusedAtARecordTheViewHadAppliedGetsItsRowRewritten() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let journal = try openJournal(home)
        var slow = commandTask("slow")
        slow.policy.timeoutSeconds = 1e16
        try await append(journal, .taskSaved(commandTask("good"), taskID: "id-good"))
        try await append(journal, .taskSaved(slow, taskID: "id-slow"))
        let loaded = try StateLoader.load(from: journal)
        try #require(loaded.state.tasks[name("slow")]?.isError == true && loaded.refused.map(\.lsn) == [2])
        // The view as the older scheduler left it: both records applied, the task not in error.
        var before = loaded.state
        before.tasks[name("slow")]?.isError = false
        before.tasks[name("slow")]?.errorText = ""
        before.tasks[name("slow")]?.refusal = nil
        try home.workspace.createSystemDirectories()
        let (view, _) = try QueryView.openOrReset(.sqlite(path: home.workspace.databaseFile), workspace: home.workspace,
                                                  defaultTimeZone: TimeZone(identifier: "UTC")!)
        try view.rebuild(from: before)
        try #require(try view.appliedLSN() == 2)

        #expect(try view.planCatchUp(with: loaded, fresh: false).work == .rows([name("slow")]))
        try await journal.close()
    }

    /// A view whose rows an older keiji wrote (no `row_rules` in `meta`, or other ones) is rebuilt at the catch-up:
    /// after an upgrade over a crashed scheduler, rows kept that keiji's next runs (a stepped cron day field) and
    /// `Executable` (commands now through /bin/sh -c), with no record after the view's `applied_lsn` to rewrite them.
    @Test func aViewWrittenByOtherRowRulesIsRebuilt() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let journal = try openJournal(home)
        try await append(journal, .taskSaved(commandTask("good"), taskID: "id-good"))
        let loaded = try StateLoader.load(from: journal)
        try home.workspace.createSystemDirectories()
        let (view, _) = try QueryView.openOrReset(.sqlite(path: home.workspace.databaseFile), workspace: home.workspace,
                                                  defaultTimeZone: TimeZone(identifier: "UTC")!)
        try view.rebuild(from: loaded.state)
        #expect(try view.planCatchUp(with: loaded, fresh: false).work == .nothing, "rows of this keiji's rules: nothing to do")
        try view.database.setMetaValue("row_rules", to: "2026-11-01")
        #expect(try view.planCatchUp(with: loaded, fresh: false).work == .rebuild)
        try view.catchUp(with: loaded, fresh: false)
        #expect(try view.planCatchUp(with: loaded, fresh: false).work == .nothing, "the rebuild records this keiji's rules")
        try await journal.close()
    }

    @Test func resolvingARefusedTaskIsRefusedWithTheReason() throws {
        var state = SchedulerState()
        var slow = commandTask("slow")
        slow.policy.retries = 1000
        Reducer.apply(JournalEntry(at: 1_795_000_000_000, .taskSaved(slow, taskID: "s")), lsn: 1, to: &state)
        #expect(throws: KeijiError.self) { try CommandValidator.validate(.taskResolved(name("slow")), against: state) }
        #expect(throws: Never.self) { try CommandValidator.validate(.taskDisabled(name("slow")), against: state) }
        #expect(throws: Never.self) { try CommandValidator.validate(.taskDeleted(name("slow")), against: state) }
    }
}

extension CommandValidator {
    static func refusesResolve(of task: TaskName, in state: SchedulerState) -> Bool {
        (try? validate(.taskResolved(task), against: state)) == nil
    }
}
