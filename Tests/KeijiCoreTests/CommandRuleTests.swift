import Testing
@testable import KeijiCore

/// `--run` and `--stop` are decided against the state, the same online and offline.
struct CommandRuleTests {
    func state(_ definition: TaskDefinition, _ events: [JournalEntry.Event] = []) -> SchedulerState {
        var state = SchedulerState()
        var lsn: UInt64 = 0
        for event in [.taskSaved(definition, taskID: "id")] + events {
            lsn += 1
            Reducer.apply(JournalEntry(at: 1_795_000_000_000 + Int64(lsn), event), lsn: lsn, to: &state)
        }
        return state
    }

    func refusal(_ event: JournalEntry.Event, _ state: SchedulerState) -> String? {
        do {
            try CommandValidator.validate(event, against: state)
            return nil
        } catch let error as KeijiError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    let started = JournalEntry.Event.runStarted(RunStart(runID: "r1", task: name("t"), slot: nil, attempt: 1, trigger: .manual))

    /// A name that differs from a saved one only in case is refused (they would share logs); the same name saved
    /// again, and names of other lengths or letters, are not.
    @Test func aNameDifferingOnlyInCaseFromASavedOneIsRefused() {
        let saved = state(commandTask("Backup-db"), [.taskSaved(commandTask("backup"), taskID: "id2")])
        #expect(refusal(.taskSaved(commandTask("BACKUP-DB"), taskID: "x"), saved)?.contains("a task named Backup-db already exists") == true)
        #expect(refusal(.taskSaved(commandTask("Backup"), taskID: "x"), saved)?.contains("a task named backup already exists") == true)
        for fine in ["Backup-db", "backup", "backup-d", "backup-dbs", "backup-dc"] {
            #expect(refusal(.taskSaved(commandTask(fine), taskID: "x"), saved) == nil, "\(fine)")
        }
    }

    /// Enabling an enabled task, disabling a disabled one and resolving one not in error change nothing: answered
    /// as `unchanged` (the CLI exits 0) and not journaled. The opposite of each applies.
    @Test func commandsThatWouldChangeNothingAreAnsweredUnchanged() {
        func code(_ event: JournalEntry.Event, _ state: SchedulerState) -> KeijiError.Code? {
            do { try CommandValidator.validate(event, against: state) } catch let error as KeijiError { return error.code } catch { return .io }
            return nil
        }
        let idle = state(commandTask("t"))
        #expect(code(.taskEnabled(name("t")), idle) == .unchanged)
        #expect(code(.taskResolved(name("t")), idle) == .unchanged)
        #expect(code(.taskDisabled(name("t")), idle) == nil)
        let disabled = state(commandTask("t"), [.taskDisabled(name("t"))])
        #expect(code(.taskDisabled(name("t")), disabled) == .unchanged)
        #expect(code(.taskEnabled(name("t")), disabled) == nil)
        #expect(refusal(.taskDisabled(name("t")), disabled) == "task t is already disabled")
        var failing = idle
        failing.tasks[name("t")]?.isError = true
        #expect(code(.taskResolved(name("t")), failing) == nil)
        #expect(code(.taskEnabled(name("nosuch")), idle) == .notFound)
        // In a cluster the node's state may lag: the command goes through.
        #expect(throws: Never.self) { try CommandValidator.validate(.taskDisabled(name("t")), against: disabled, answeringUnchanged: false) }
    }

    @Test func runNowOfAnIdleTaskIsQueued() {
        #expect(refusal(.taskTriggered(name("t")), state(commandTask("t"))) == nil)
    }

    @Test func runNowOfASkipTaskThatRunsOrIsQueuedIsRefused() {
        let running = state(commandTask("t"), [.taskTriggered(name("t")), started])
        #expect(refusal(.taskTriggered(name("t")), running)?.contains("already running") == true)
        let queued = state(commandTask("t"), [.taskTriggered(name("t"))])
        #expect(refusal(.taskTriggered(name("t")), queued)?.contains("already has a run queued") == true)
    }

    @Test func runNowOfATaskThatAllowsOverlapStartsAnotherRun() {
        var policy = RunPolicy()
        policy.overlap = .allow
        #expect(refusal(.taskTriggered(name("t")), state(commandTask("t", policy: policy), [.taskTriggered(name("t")), started])) == nil)
    }

    @Test func runNowOfADisabledOrFailedTaskSaysHowToFixIt() {
        let disabled = refusal(.taskTriggered(name("t")), state(commandTask("t"), [.taskDisabled(name("t"))]))
        #expect(disabled?.contains("keiji task --enable --name=t") == true, "\(disabled ?? "accepted")")
        let failed = state(commandTask("t"), [started, .runFinished(RunEnd(runID: "r1", task: name("t"), outcome: .failed, exitCode: 3, signal: nil,
                                                                            durationMs: 1, latenessMs: 0, final: true, message: "exit status 3"))])
        let inError = refusal(.taskTriggered(name("t")), failed)
        #expect(inError?.contains("keiji task --resolve --name=t") == true, "\(inError ?? "accepted")")
    }

    @Test func stopWithNothingRunningIsRefused() {
        #expect(refusal(.taskStopRequested(name("t")), state(commandTask("t")))?.contains("nothing to stop") == true)
        #expect(refusal(.taskStopRequested(name("t")), state(commandTask("t"), [.taskTriggered(name("t")), started])) == nil)
        #expect(refusal(.taskStopRequested(name("nosuch")), state(commandTask("t")))?.contains("no task named nosuch") == true)
    }
}
