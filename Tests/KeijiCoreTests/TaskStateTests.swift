import Testing

@testable import KeijiCore

/// `TaskState` keeps its fields in a shared copy-on-write box: copies must still behave as independent values.
struct TaskStateTests {
    func run(_ id: String) -> RunSummary {
        RunSummary(runID: id, slot: 1, startedAt: 1_000, finishedAt: 2_000, outcome: "succeeded", exitCode: 0, signal: nil,
                   latenessMs: 0, attempt: 1, trigger: "schedule", message: nil)
    }

    @Test func aChangedCopyLeavesTheOriginalAsItWas() {
        var original = TaskState(taskID: "t", definition: commandTask("copied"), createdAt: 0, updatedAt: 0, anchor: 100)
        original.recentRuns.append(run("first"))
        var copy = original
        #expect(copy == original)
        copy.anchor = 200
        copy.recentRuns.append(run("second"))
        copy.definition.description = "changed"
        #expect(original.anchor == 100 && original.recentRuns.map(\.runID) == ["first"] && original.definition.description != "changed")
        #expect(copy.anchor == 200 && copy.recentRuns.map(\.runID) == ["first", "second"])
        #expect(copy != original)
    }

    /// The engine hands the view writer a copy of the whole state and keeps applying records to its own.
    @Test func aCopyOfTheStateKeepsItsTasksWhenTheOriginalChanges() {
        var state = SchedulerState()
        Reducer.apply(JournalEntry(at: 1_000, .taskSaved(commandTask("kept"), taskID: "t")), lsn: 1, to: &state)
        let snapshot = state
        Reducer.apply(JournalEntry(at: 2_000, .taskDisabled(name("kept"))), lsn: 2, to: &state)
        #expect(state.tasks[name("kept")]?.isDisabled == true)
        #expect(snapshot.tasks[name("kept")]?.isDisabled == false && snapshot.tasks[name("kept")]?.updatedAt == 1_000)
    }
}
