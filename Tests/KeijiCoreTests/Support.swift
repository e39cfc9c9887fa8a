import Foundation
@testable import KeijiCore

struct TemporaryHome {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.path + "/keiji-core-test-" + UUID().uuidString.prefix(8)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    var workspace: Workspace { Workspace(home: path) }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func name(_ raw: String) -> TaskName { try! TaskName(raw) }

func commandTask(_ raw: String, every seconds: Int = 10, command: String = "true", policy: RunPolicy = RunPolicy()) -> TaskDefinition {
    TaskDefinition(name: name(raw), description: "test task \(raw)", action: .command(command),
                   schedule: ScheduleSpec(.every(seconds, .seconds)), policy: policy, directory: "/tmp")
}

/// A plausible history: tasks saved, runs started and finished (some failing), disabled, deleted, a crash.
func sampleHistory() -> [JournalEntry] {
    var entries: [JournalEntry] = []
    var t: Int64 = 1_795_000_000_000
    func add(_ event: JournalEntry.Event) { t += 1000; entries.append(JournalEntry(at: t, event)) }
    add(.schedulerStarted(pid: 42))
    add(.taskSaved(commandTask("alpha"), taskID: "id-alpha"))
    add(.taskSaved(commandTask("beta", every: 5, command: "exit 3"), taskID: "id-beta"))
    for i in 0..<30 {
        let run = "r\(i)"
        let task = i % 3 == 0 ? name("beta") : name("alpha")
        add(.runStarted(RunStart(runID: run, task: task, slot: 1_795_000_000 + Int64(i) * 10, attempt: 1, trigger: .schedule)))
        let failed = task == name("beta")
        add(.runFinished(RunEnd(runID: run, task: task, outcome: failed ? .failed : .succeeded, exitCode: failed ? 3 : 0,
                                signal: nil, durationMs: 12, latenessMs: 1, final: true, message: failed ? "exit status 3" : nil)))
    }
    add(.taskResolved(name("beta")))
    add(.taskDisabled(name("alpha")))
    add(.runMissed(RunMissed(task: name("beta"), slot: 1_795_000_900, count: 4, reason: .downtime)))
    add(.taskSaved(commandTask("gamma", every: 60), taskID: "id-gamma"))
    add(.taskTriggered(name("gamma")))
    add(.runStarted(RunStart(runID: "g1", task: name("gamma"), slot: nil, attempt: 1, trigger: .manual)))
    add(.taskEnabled(name("alpha")))
    add(.taskSaved(commandTask("alpha", every: 20), taskID: "id-alpha-2"))
    add(.taskDeleted(name("beta")))
    add(.runInterrupted(runID: "g1", task: name("gamma")))
    add(.schedulerStopped(clean: false))
    return entries
}

/// Applies `entry`'s effect on `state` to `view` as the scheduler's view writer does: whole rows only for a saved
/// definition, otherwise the run columns and the run the entry ended.
func applyAsTheScheduler(_ entry: JournalEntry, state: SchedulerState, to view: QueryView) throws {
    let touched = Set([entry.taskName].compactMap { $0 })
    var redefined: Set<TaskName> = []
    var newRuns: [(TaskName, RunSummary)] = []
    switch entry.event {
    case .taskSaved: redefined = touched
    case .runFinished, .runMissed, .runInterrupted:
        if let name = entry.taskName, let run = state.tasks[name]?.recentRuns.last { newRuns = [(name, run)] }
    default: break
    }
    try view.apply(touched: touched, state: state, newRuns: newRuns, definitionsChanged: redefined)
}
