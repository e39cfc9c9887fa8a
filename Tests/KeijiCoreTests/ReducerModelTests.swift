import Foundation
import Testing

@testable import KeijiCore

/// Model-based property test of the reducer: random journals of commands and run records, replayed through
/// `Reducer.apply` with and without checkpoints (a snapshot encoded and decoded at random points, as a
/// restart does), must agree with a small model written from the documented behaviour.
///
/// A seeded generator rather than a property-testing package: no new dependency for the package graph
/// others edit, nothing more to build on the 2-core CI machine, and a failure names its seed and step.
struct ReducerModelTests {
    static let names = ["alpha", "beta", "gamma"]

    /// The model: only what the reducer's documentation promises, kept as plainly as possible.
    struct Model: Equatable {
        struct Task: Equatable {
            var taskID: String
            var schedule: ScheduleSpec
            var continueOnError: Bool
            var disabled = false
            var error = false
            var errorText = ""
            var pending = 0
            var lastSlot: Int64?
            var lastOutcome: RunOutcome?
            var recent: [String] = []
        }
        var tasks: [String: Task] = [:]
        var active: [String: String] = [:]  // run id → task
        var ofDeletedTasks: [String: String] = [:]  // run id → task, for runs going on when their task was deleted
        var running = false
        var lastLSN: UInt64 = 0

        mutating func apply(_ entry: JournalEntry, lsn: UInt64) {
            lastLSN = lsn
            let seconds = entry.at / 1000
            func remember(_ id: String, in task: inout Task) {
                task.recent.append(id)
                if task.recent.count > 20 { task.recent.removeFirst() }
            }
            switch entry.event {
            case .taskSaved(let definition, let taskID):
                let name = definition.name.rawValue
                if var task = tasks[name] {
                    if task.schedule != definition.schedule { task.lastSlot = nil }
                    task.schedule = definition.schedule
                    task.continueOnError = definition.policy.continueOnError
                    tasks[name] = task
                } else {
                    tasks[name] = Task(taskID: taskID, schedule: definition.schedule, continueOnError: definition.policy.continueOnError)
                }
            case .taskEnabled(let name):
                // Counting starts again now, or after the last slot run if that is later (the clock stepped back).
                if let task = tasks[name.rawValue], task.disabled { tasks[name.rawValue]?.lastSlot = max(task.lastSlot ?? seconds, seconds) }
                tasks[name.rawValue]?.disabled = false
            case .taskDisabled(let name):
                tasks[name.rawValue]?.disabled = true
                tasks[name.rawValue]?.pending = 0
            case .taskDeleted(let name):
                tasks[name.rawValue] = nil
                // Its runs going on are no runs of a task created again under the name.
                for (runID, task) in active where task == name.rawValue {
                    active[runID] = nil
                    ofDeletedTasks[runID] = task
                }
            case .taskResolved(let name):
                // Slots that passed while in error are not owed: the slots start again at the resolve (or after the last
                // slot run, if later).
                if let task = tasks[name.rawValue], task.error { tasks[name.rawValue]?.lastSlot = max(task.lastSlot ?? seconds, seconds) }
                tasks[name.rawValue]?.error = false
                tasks[name.rawValue]?.errorText = ""
            case .taskErrored(let name, let errorText):
                tasks[name.rawValue]?.error = true
                tasks[name.rawValue]?.errorText = errorText
                tasks[name.rawValue]?.pending = 0
            case .taskTriggered(let name):
                if tasks[name.rawValue]?.disabled == false, tasks[name.rawValue]?.error == false { tasks[name.rawValue]?.pending += 1 }
            case .taskStopRequested:
                break
            case .runStarted(let start):
                active[start.runID] = start.task.rawValue
                guard var task = tasks[start.task.rawValue] else { return }
                if let slot = start.slot { task.lastSlot = max(task.lastSlot ?? slot, slot) }
                if start.trigger == .manual, task.pending > 0 { task.pending -= 1 }
                tasks[start.task.rawValue] = task
            case .runFinished(let end):
                if ofDeletedTasks.removeValue(forKey: end.runID) != nil { return }
                active[end.runID] = nil
                guard var task = tasks[end.task.rawValue] else { return }
                task.lastOutcome = end.outcome
                remember(end.runID, in: &task)
                if end.outcome.isFailure && end.final && !task.continueOnError {
                    task.error = true
                    task.errorText = "[ task error ]: " + (end.message ?? end.outcome.rawValue)
                    task.pending = 0
                }
                tasks[end.task.rawValue] = task
            case .runMissed(let missed):
                guard var task = tasks[missed.task.rawValue] else { return }
                task.lastSlot = max(task.lastSlot ?? missed.slot, missed.slot)
                remember("missed-\(missed.slot)", in: &task)
                tasks[missed.task.rawValue] = task
            case .runInterrupted(let runID, let name, let givenUp, _):
                if ofDeletedTasks.removeValue(forKey: runID) != nil { return }
                active[runID] = nil
                guard var task = tasks[name.rawValue] else { return }
                task.lastOutcome = .interrupted
                remember(runID, in: &task)
                if let givenUp {
                    task.error = true
                    task.errorText = "[ task error ]: " + givenUp
                    task.pending = 0
                }
                tasks[name.rawValue] = task
            case .schedulerStarted:
                running = true
            case .schedulerStopped:
                running = false
            case .recoveryCompleted:
                break
            }
        }
    }

    /// The reducer's state seen through the model's eyes.
    static func observe(_ state: SchedulerState) -> Model {
        var model = Model()
        for (name, task) in state.tasks {
            model.tasks[name.rawValue] = Model.Task(
                taskID: task.taskID, schedule: task.definition.schedule, continueOnError: task.definition.policy.continueOnError,
                disabled: task.isDisabled, error: task.isError, errorText: task.errorText, pending: task.pendingTriggers,
                lastSlot: task.lastSlot, lastOutcome: task.lastOutcome, recent: task.recentRuns.map(\.runID))
        }
        model.active = state.activeRuns.mapValues(\.start.task.rawValue)
        model.ofDeletedTasks = (state.runsOfDeletedTasks ?? [:]).mapValues(\.start.task.rawValue)
        model.running = state.schedulerRunning
        model.lastLSN = state.lastLSN
        return model
    }

    /// A random but plausible journal: commands on a few names, runs that start, finish or are interrupted
    /// (and some records about runs or tasks that do not exist), time moving forward but now and then stepping back.
    static func history(seed: UInt64, length: Int) -> [JournalEntry] {
        var rng = SeededGenerator(seed: seed)
        var at: Int64 = 1_795_000_000_000
        var entries: [JournalEntry] = []
        var started: [(id: String, task: TaskName, attempt: Int)] = []
        var nextRun = 0
        func pickName() -> TaskName { name(names.randomElement(using: &rng)!) }
        for _ in 0..<length {
            at += Int64.random(in: 0...5_000, using: &rng)
            if Int.random(in: 0..<40, using: &rng) == 0 { at -= Int64.random(in: 1_000...120_000, using: &rng) }  // the wall clock stepped back
            let task = pickName()
            let event: JournalEntry.Event
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<12:
                var policy = RunPolicy()
                policy.continueOnError = Bool.random(using: &rng)
                let every = [5, 10, 60].randomElement(using: &rng)!
                event = .taskSaved(commandTask(task.rawValue, every: every, policy: policy), taskID: "id-\(Int.random(in: 0..<4, using: &rng))")
            case 12..<18: event = .taskEnabled(task)
            case 18..<24: event = .taskDisabled(task)
            case 24..<27: event = .taskDeleted(task)
            case 27..<32: event = .taskResolved(task)
            case 32..<38: event = .taskTriggered(task)
            case 38..<40: event = .taskStopRequested(task)
            case 40..<58:
                nextRun += 1
                let trigger = [RunTrigger.schedule, .manual, .retry, .catchUp, .recovery].randomElement(using: &rng)!
                let slot: Int64? = trigger == .manual ? nil : at / 1000 - Int64.random(in: 0...30, using: &rng)
                let attempt = Int.random(in: 1...3, using: &rng)
                started.append(("r\(nextRun)", task, attempt))
                event = .runStarted(RunStart(runID: "r\(nextRun)", task: task, slot: slot, attempt: attempt, trigger: trigger))
            case 58..<76:
                // Usually a run in progress; sometimes one never started (a record about an unknown run).
                let run = started.isEmpty || Int.random(in: 0..<10, using: &rng) == 0
                    ? (id: "ghost\(Int.random(in: 0..<5, using: &rng))", task: task, attempt: 1)
                    : started.remove(at: Int.random(in: 0..<started.count, using: &rng))
                let outcome = [RunOutcome.succeeded, .failed, .timedOut, .stopped, .spawnFailed].randomElement(using: &rng)!
                event = .runFinished(RunEnd(runID: run.id, task: run.task, outcome: outcome, exitCode: outcome == .failed ? 3 : 0, signal: nil,
                                            durationMs: 10, latenessMs: 1, final: Bool.random(using: &rng),
                                            message: Bool.random(using: &rng) ? "exit status 3" : nil))
            case 76..<84:
                guard !started.isEmpty else { continue }
                let run = started.remove(at: Int.random(in: 0..<started.count, using: &rng))
                let givenUp = Int.random(in: 0..<4, using: &rng) == 0 ? "interrupted 3 times; given up" : nil
                event = .runInterrupted(runID: run.id, task: run.task, givenUp: givenUp)
            case 84..<92:
                event = .runMissed(RunMissed(task: task, slot: at / 1000 - Int64.random(in: 0...60, using: &rng),
                                             count: Int.random(in: 1...4, using: &rng), reason: [.overlap, .downtime, .error].randomElement(using: &rng)!))
            case 92..<96: event = .schedulerStarted(pid: 7)
            default: event = .schedulerStopped(clean: Bool.random(using: &rng))
            }
            entries.append(JournalEntry(at: at, event))
        }
        return entries
    }

    @Test(arguments: 0..<40)
    func theReducerAgreesWithTheModelWithAndWithoutCheckpoints(batch: Int) throws {
        for offset in 0..<10 {
            let seed = UInt64(batch * 10 + offset)
            var rng = SeededGenerator(seed: seed ^ 0xC0FFEE)
            let history = Self.history(seed: seed, length: Int.random(in: 1...120, using: &rng))
            var model = Model()
            var plain = SchedulerState()
            var restarted = SchedulerState()
            for (index, entry) in history.enumerated() {
                let lsn = UInt64(index + 1)
                model.apply(entry, lsn: lsn)
                Reducer.apply(entry, lsn: lsn, to: &plain)
                if Int.random(in: 0..<8, using: &rng) == 0 {
                    // A checkpoint here, and a restart that loads it.
                    restarted = try StateLoader.decodeSnapshot(try StateLoader.snapshot(restarted))
                }
                Reducer.apply(entry, lsn: lsn, to: &restarted)
                let context = "seed \(seed), record \(lsn) (\(entry.typeName))"
                guard Self.observe(plain) == model else {
                    Issue.record("the reducer disagrees with the model at \(context):\nreducer \(Self.observe(plain))\nmodel   \(model)")
                    return
                }
                guard restarted == plain else {
                    Issue.record("a replay through checkpoints differs from a plain replay at \(context)")
                    return
                }
            }
        }
    }
}

/// SplitMix64: a tiny deterministic generator, so every failing case can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
