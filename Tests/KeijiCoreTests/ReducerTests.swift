import Foundation
import KeijiJournal
import Testing

@testable import KeijiCore

struct ReducerTests {
    func fold(_ entries: [JournalEntry]) -> SchedulerState {
        var state = SchedulerState()
        for (index, entry) in entries.enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        return state
    }

    /// A restart loads the newest checkpoint's snapshot and applies the records after it: wherever the
    /// checkpoint falls, that must give the state of a replay from the start.
    @Test func resumingFromACheckpointAtAnyRecordGivesTheSameState() throws {
        let history = sampleHistory()
        let whole = fold(history)
        for cut in 0...history.count {
            var state = try StateLoader.decodeSnapshot(try StateLoader.snapshot(fold(Array(history.prefix(cut)))))
            for (index, entry) in history.enumerated().dropFirst(cut) { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
            #expect(state == whole, "checkpoint after record \(cut)")
        }
    }

    /// A run going on when its task is deleted ends as no run of the task created again under the name, at any
    /// checkpoint between.
    @Test func aDeletedTasksRunIsNoRunOfATaskCreatedUnderItsName() throws {
        let at: Int64 = 1_795_000_000_000
        let history = [
            JournalEntry(at: at, .taskSaved(commandTask("dd"), taskID: "id-old")),
            JournalEntry(at: at + 1000, .runStarted(RunStart(runID: "old1", task: name("dd"), slot: nil, attempt: 1, trigger: .manual))),
            JournalEntry(at: at + 2000, .taskDeleted(name("dd"))),
            JournalEntry(at: at + 3000, .taskSaved(commandTask("dd"), taskID: "id-new")),
        ]
        let end = JournalEntry(at: at + 4000, .runFinished(RunEnd(runID: "old1", task: name("dd"), outcome: .stopped, exitCode: nil, signal: 9,
                                                                  durationMs: 3000, latenessMs: 0, final: true, message: "the task was deleted")))
        let going = fold(history)
        #expect(!going.isRunning(name("dd")) && going.runsOfDeletedTasks?["old1"] != nil)
        #expect(try StateLoader.decodeSnapshot(try StateLoader.snapshot(going)) == going, "a checkpoint keeps it")
        let ended = fold(history + [end])
        #expect(ended.runsOfDeletedTasks == nil && ended.tasks[name("dd")]?.recentRuns.isEmpty == true && ended.tasks[name("dd")]?.lastOutcome == nil)
    }

    @Test func theHistoryFoldsToWhatItSays() throws {
        let state = fold(sampleHistory())
        #expect(state.tasks[name("beta")] == nil, "deleted")
        let alpha = try #require(state.tasks[name("alpha")])
        #expect(!alpha.isDisabled && alpha.taskID == "id-alpha", "a rebuild keeps the task id")
        #expect(alpha.definition.schedule == ScheduleSpec(.every(20, .seconds)) && alpha.lastSlot == nil, "a new schedule starts afresh")
        let gamma = try #require(state.tasks[name("gamma")])
        #expect(gamma.lastOutcome == .interrupted && !gamma.isQueued && state.activeRuns.isEmpty)
        #expect(!state.schedulerRunning)
    }

    @Test func failuresSetTheErrorFlagUnlessTheTaskContinues() {
        var policy = RunPolicy()
        var entries = [JournalEntry(at: 1000, .taskSaved(commandTask("a", policy: policy), taskID: "a")),
                       JournalEntry(at: 2000, .runStarted(RunStart(runID: "1", task: name("a"), slot: 10, attempt: 1, trigger: .schedule))),
                       JournalEntry(at: 3000, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .failed, exitCode: 3, signal: nil, durationMs: 1, latenessMs: 0, final: true, message: "exit status 3")))]
        var state = fold(entries)
        #expect(state.tasks[name("a")]?.isError == true && state.tasks[name("a")]?.errorText == "[ task error ]: exit status 3")
        policy.continueOnError = true
        entries[0] = JournalEntry(at: 1000, .taskSaved(commandTask("a", policy: policy), taskID: "a"))
        state = fold(entries)
        #expect(state.tasks[name("a")]?.isError == false)
        // A failure that a retry follows does not set the flag either.
        entries[0] = JournalEntry(at: 1000, .taskSaved(commandTask("a"), taskID: "a"))
        entries[2] = JournalEntry(at: 3000, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .failed, exitCode: 3, signal: nil, durationMs: 1, latenessMs: 0, final: false, message: nil)))
        #expect(fold(entries).tasks[name("a")]?.isError == false)
    }

    /// A run that could not start for want of a resource at that moment (``RunEnd/transient``) is recorded, but even
    /// final it sets no error flag: its next slot tries again. Its record is JSON (a keiji from before the flag reads a
    /// plain failure, as it would have), and one without it says nothing of it.
    @Test func aRunRefusedForWantOfAResourceSetsNoErrorFlag() throws {
        let reason = "the scheduler is at its descriptor limit (1008 in use, 16 kept free for itself; ulimit -n): a's log was not opened"
        let refused = JournalEntry(at: 3000, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .spawnFailed, exitCode: nil, signal: nil,
                                                                 durationMs: 0, latenessMs: 0, final: true, message: reason, transient: true)))
        let entries = [JournalEntry(at: 1000, .taskSaved(commandTask("a"), taskID: "a")),
                       JournalEntry(at: 2000, .runStarted(RunStart(runID: "1", task: name("a"), slot: 10, attempt: 1, trigger: .schedule))),
                       refused]
        let task = try #require(fold(entries).tasks[name("a")])
        #expect(!task.isError && task.lastOutcome == .spawnFailed && task.recentRuns.last?.message == reason)
        let stored = try refused.encoded()
        #expect(stored.first == UInt8(ascii: "{") && String(decoding: stored, as: UTF8.self).contains(#""transient":true"#))
        #expect(try JournalEntry.decode(stored) == refused)
        guard case .runFinished(var permanent) = refused.event else { return }
        permanent.transient = false
        #expect(fold(Array(entries.prefix(2)) + [JournalEntry(at: 3000, .runFinished(permanent))]).tasks[name("a")]?.isError == true)
        #expect(!String(decoding: try JournalEntry(at: 3000, .runFinished(permanent)).jsonLine(), as: UTF8.self).contains("transient"))
    }

    @Test func aGivenUpInterruptedRunSetsTheErrorFlagAndItsRecordsRoundTrip() throws {
        let start = RunStart(runID: "3", task: name("a"), slot: 10, attempt: 3, trigger: .recovery, interruptions: 2)
        let givenUp = "run of slot 1970-01-01T00:00:10Z interrupted 3 times by scheduler restarts; given up"
        let entries = [JournalEntry(at: 1000, .taskSaved(commandTask("a"), taskID: "a")),
                       JournalEntry(at: 2000, .runStarted(start)),
                       JournalEntry(at: 3000, .runInterrupted(runID: "3", task: name("a"), givenUp: givenUp))]
        let state = fold(entries)
        let task = try #require(state.tasks[name("a")])
        #expect(task.isError && task.errorText == "[ task error ]: " + givenUp)
        #expect(task.recentRuns.last?.attempt == 3 && task.recentRuns.last?.message == givenUp && state.activeRuns.isEmpty)
        // A plain interruption leaves the flag alone.
        #expect(fold(Array(entries.prefix(2)) + [JournalEntry(at: 3000, .runInterrupted(runID: "3", task: name("a")))]).tasks[name("a")]?.isError == false)
        for entry in entries {
            #expect(try JournalEntry.decode(try entry.encoded()) == entry, "\(entry.typeName)")
        }
        #expect(try String(decoding: JournalEntry(at: 2000, .runStarted(start)).jsonLine(), as: UTF8.self).contains(#""interruptions":2"#))
    }

    /// Slots that pass while a task waits in error are not owed: resolving starts counting again, as enabling does.
    @Test func resolvingATaskStartsItsSlotsAfresh() throws {
        let entries = [JournalEntry(at: 1_000_000, .taskSaved(commandTask("a"), taskID: "a")),
                       JournalEntry(at: 1_001_000, .runStarted(RunStart(runID: "1", task: name("a"), slot: 1001, attempt: 1, trigger: .schedule))),
                       JournalEntry(at: 1_001_500, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .failed, exitCode: 1, signal: nil, durationMs: 1, latenessMs: 0, final: true, message: nil))),
                       JournalEntry(at: 1_500_250, .taskResolved(name("a")))]
        let task = try #require(fold(entries).tasks[name("a")])
        #expect(!task.isError && task.lastSlot == 1500 && task.anchor == 1500 && task.phaseMilliseconds == 250)
    }

    /// An enable or a resolve dated before the task's last slot run (the wall clock stepped back) leaves that slot
    /// the cursor: counting from the earlier instant ran the slots between again once the engine's memory of them
    /// was gone (a restart).
    @Test func anEnableOrResolveWhileTheClockIsBehindKeepsTheLastSlotRun() throws {
        let saved = JournalEntry(at: 1_000_000, .taskSaved(commandTask("a"), taskID: "a"))
        let started = JournalEntry(at: 1_001_000, .runStarted(RunStart(runID: "1", task: name("a"), slot: 1001, attempt: 1, trigger: .schedule)))
        let failed = JournalEntry(at: 1_001_500, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .failed, exitCode: 1, signal: nil,
                                                                      durationMs: 1, latenessMs: 0, final: true, message: nil)))
        let enabled = try #require(fold([saved, started, JournalEntry(at: 1_001_600, .taskDisabled(name("a"))),
                                         JournalEntry(at: 940_250, .taskEnabled(name("a")))]).tasks[name("a")])
        #expect(enabled.lastSlot == 1001 && enabled.anchor == 940 && !enabled.isDisabled)
        let resolved = try #require(fold([saved, started, failed, JournalEntry(at: 940_250, .taskResolved(name("a")))]).tasks[name("a")])
        #expect(resolved.lastSlot == 1001 && resolved.anchor == 940 && !resolved.isError)
    }

    /// A cluster's `task.errored` (another node's run failed) puts the task in error with that node's text, round
    /// trips through both stored forms, and a resolve ends it as it ends an error of the node's own.
    @Test func anErrorPublishedByAnotherNodePutsTheTaskInError() throws {
        let errored = JournalEntry(at: 1_002_000, .taskErrored(name("a"), errorText: "[ task error ]: exit status 3"))
        let saved = JournalEntry(at: 1_000_000, .taskSaved(commandTask("a"), taskID: "a"))
        let task = try #require(fold([saved, errored]).tasks[name("a")])
        #expect(task.isError && task.errorText == "[ task error ]: exit status 3")
        #expect(try JournalEntry.decode(try errored.encoded()) == errored && JournalEntry.decode(try errored.jsonLine()) == errored)
        #expect(fold([saved, errored, JournalEntry(at: 1_003_000, .taskResolved(name("a")))]).tasks[name("a")]?.isError == false)
        #expect(errored.event.isClusterCommand)
    }

    @Test func everyRecordRoundTripsThroughItsJSONLine() throws {
        var report = RecoveryReport(startedAt: 5, previousShutdown: .crash)
        report.missedSlots = [.init(task: name("a"), policy: .once, count: 3, firstSlot: 1, lastSlot: 3, runs: 1)]
        for entry in sampleHistory() + [JournalEntry(at: 9, .recoveryCompleted(report))] {
            let bytes = try entry.jsonLine()
            #expect(!bytes.contains(10), "one line")
            #expect(try JournalEntry.decode(bytes) == entry, "\(entry.typeName)")
            #expect(try JournalEntry.decode(try entry.encoded()) == entry, "\(entry.typeName), stored form")
        }
        // Escapes in a run record's message survive both forms.
        let tricky = JournalEntry(at: 7, .runFinished(RunEnd(runID: "r", task: name("a"), outcome: .failed, exitCode: nil, signal: 9,
                                                            durationMs: 5, latenessMs: nil, final: false,
                                                            message: "quote \" backslash \\ newline \n tab \t bell \u{7} é 🦀")))
        #expect(try JournalEntry.decode(try tricky.encoded()) == tricky)
        #expect(try JournalEntry.decode(try tricky.jsonLine()) == tricky)
        #expect(throws: (any Error).self) { try JournalEntry.decode(Array(#"{"type":"task.exploded","at":1}"#.utf8)) }
        #expect(throws: (any Error).self) { try JournalEntry.decode(Array(#"{"type":"task.enabled","at":1,"task":"../x"}"#.utf8)) }
    }

    @Test func replayFromTheJournalEqualsTheLiveFoldWithAndWithoutACheckpoint() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let entries = sampleHistory()
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: options)
        var live = SchedulerState()
        for (index, entry) in entries.enumerated() {
            let lsn = try await journal.append(try entry.encoded())
            Reducer.apply(entry, lsn: lsn, to: &live)
            if index == 40 { try await journal.writeCheckpoint(try StateLoader.snapshot(live), at: lsn) }
        }
        let loaded = try StateLoader.load(from: journal)
        #expect(loaded.state == live, "checkpoint + replay equals the live fold")
        #expect(loaded.recordsReplayed == entries.count - 41)
        try await journal.close()

        // Without the checkpoint: full replay, same state.
        for file in try FileManager.default.contentsOfDirectory(atPath: home.workspace.journalDirectory) where file.hasPrefix("ckpt-") {
            try FileManager.default.removeItem(atPath: home.workspace.journalDirectory + "/" + file)
        }
        let reopened = try Journal.open(directory: home.workspace.journalDirectory, options: options)
        let full = try StateLoader.load(from: reopened)
        #expect(full.state == live && full.recordsReplayed == entries.count)
        try await reopened.close()
    }

    /// A run journaled within the firing lead that ended before its process began (a `--disable` came first) ran
    /// nothing: the task's last start (LastExecutionTime, `--list`'s LAST) is the run before it, one still going
    /// on, or none.
    @Test func aRunThatNeverBeganIsNotTheTasksLastStart() {
        func started(_ id: String, at: Int64) -> JournalEntry {
            JournalEntry(at: at, .runStarted(RunStart(runID: id, task: name("a"), slot: at / 1000, attempt: 1, trigger: .schedule)))
        }
        func ended(_ id: String, at: Int64, neverBegan: Bool) -> JournalEntry {
            JournalEntry(at: at, .runFinished(RunEnd(runID: id, task: name("a"), outcome: neverBegan ? .stopped : .succeeded, exitCode: neverBegan ? nil : 0,
                                                     signal: nil, durationMs: 0, latenessMs: neverBegan ? nil : 0, final: true,
                                                     message: neverBegan ? RunEnd.notBegunMessage("the task was disabled") : nil)))
        }
        let saved = JournalEntry(at: 1000, .taskSaved(commandTask("a"), taskID: "a"))
        #expect(fold([saved, started("1", at: 2000), ended("1", at: 2100, neverBegan: false), started("2", at: 3000), ended("2", at: 3000, neverBegan: true)])
            .tasks[name("a")]?.lastStartedAt == 2000)
        #expect(fold([saved, started("2", at: 3000), ended("2", at: 3000, neverBegan: true)]).tasks[name("a")]?.lastStartedAt == nil)
        // With overlap allowed, a run that began and is still going is the last start.
        #expect(fold([saved, started("1", at: 2000), started("2", at: 3000), ended("2", at: 3000, neverBegan: true)]).tasks[name("a")]?.lastStartedAt == 2000)
        // A run that began and ended is still the last start.
        #expect(fold([saved, started("1", at: 2000), ended("1", at: 2500, neverBegan: false)]).tasks[name("a")]?.lastStartedAt == 2000)
    }

    /// Task numbers come from the journal alone: a replay gives every task the number it had, saving a new
    /// definition keeps it, and a task deleted and created again gets the next one (numbers never repeat).
    @Test func taskNumbersAreGivenOnceAndNeverReused() throws {
        let state = fold(sampleHistory())
        #expect(state.tasks[name("alpha")]?.number == 1 && state.tasks[name("gamma")]?.number == 3, "beta had 2")
        var entries = sampleHistory()
        entries.append(JournalEntry(at: 1_795_100_000_000, .taskSaved(commandTask("beta"), taskID: "id-beta-2")))
        let again = fold(entries)
        #expect(again.tasks[name("beta")]?.number == 4 && again.lastTaskNumber == 4)

        // A snapshot from before numbers existed gets them in creation order, after the counter.
        var old = again
        old.lastTaskNumber = nil
        for key in old.tasks.keys { old.tasks[key]?.number = nil }
        let decoded = try StateLoader.decodeSnapshot(try StateLoader.snapshot(old))
        var numbered = decoded
        numbered.numberUnnumberedTasks()
        #expect(numbered.tasks.mapValues { $0.number } == [name("alpha"): 1, name("gamma"): 2, name("beta"): 3])
    }
}

extension ReducerTests {
    /// A journal written before the scheduler dated such ends at the run's moment holds runs that failed before their
    /// dated start (their log could not be opened): their duration reads 0, not a negative figure.
    @Test func anEndDatedBeforeItsStartLastedNothing() {
        let state = fold([JournalEntry(at: 1000, .taskSaved(commandTask("a"), taskID: "a")),
                          JournalEntry(at: 2_044, .runStarted(RunStart(runID: "1", task: name("a"), slot: 2, attempt: 1, trigger: .schedule))),
                          JournalEntry(at: 2_000, .runFinished(RunEnd(runID: "1", task: name("a"), outcome: .spawnFailed, exitCode: nil, signal: nil,
                                                                      durationMs: 0, latenessMs: 0, final: true, message: "cannot open …")))])
        #expect(state.tasks[name("a")]?.recentRuns.last?.durationMs == 0)
    }
}
