/// The one place journal records become state. Pure and deterministic: it reads nothing but its arguments
/// (every time comes from a record), so live operation and replay produce identical state, and replaying a
/// journal twice gives the same result.
public enum Reducer {
    public static func apply(_ entry: JournalEntry, lsn: UInt64, to state: inout SchedulerState) {
        state.lastLSN = max(state.lastLSN, lsn)
        let at = entry.at
        let seconds = at / 1000
        switch entry.event {
        case .taskSaved(let definition, let taskID):
            defer { refuseIfInvalid(definition.name, "task.saved at LSN \(lsn)", in: &state) }
            if var task = state.tasks[definition.name] {
                if task.definition.schedule != definition.schedule {
                    task.anchor = seconds
                    task.phaseMilliseconds = at - seconds * 1000
                    task.lastSlot = nil
                }
                task.definition = definition
                task.updatedAt = at
                state.tasks[definition.name] = task
            } else {
                let number = (state.lastTaskNumber ?? 0) + 1
                state.lastTaskNumber = number
                state.tasks[definition.name] = TaskState(taskID: taskID, number: number, definition: definition, createdAt: at, updatedAt: at,
                                                         anchor: seconds, phaseMilliseconds: at - seconds * 1000)
            }
        case .taskEnabled(let name):
            update(name, in: &state) { task in
                if task.isDisabled {
                    // Slots that passed while disabled are not missed: counting starts again now, or after the last
                    // slot run if that lies ahead (the clock stepped back): a slot that ran never runs again.
                    task.anchor = seconds
                    task.phaseMilliseconds = at - seconds * 1000
                    task.lastSlot = max(task.lastSlot ?? seconds, seconds)
                }
                task.isDisabled = false
                task.updatedAt = at
            }
        case .taskDisabled(let name):
            update(name, in: &state) { task in
                task.isDisabled = true
                task.pendingTriggers = 0
                task.updatedAt = at
            }
        case .taskDeleted(let name):
            state.tasks[name] = nil
            let going = state.activeRuns.filter { $0.value.start.task == name }
            if !going.isEmpty {
                for runID in going.keys { state.activeRuns[runID] = nil }
                state.runsOfDeletedTasks = (state.runsOfDeletedTasks ?? [:]).merging(going) { $1 }
            }
        case .taskResolved(let name):
            update(name, in: &state) { task in
                guard task.refusal == nil else { return }  // only a valid definition ends a refusal
                if task.isError {
                    // Slots that passed while in error are not owed (no catch-up burst): counting starts again now, or
                    // after the last slot run if that lies ahead, as for an enable.
                    task.anchor = seconds
                    task.phaseMilliseconds = at - seconds * 1000
                    task.lastSlot = max(task.lastSlot ?? seconds, seconds)
                }
                task.isError = false
                task.errorText = ""
                task.updatedAt = at
            }
        case .taskErrored(let name, let errorText):
            update(name, in: &state) { task in
                guard task.refusal == nil else { return }  // a refusal's own error text stays
                task.isError = true
                task.errorText = errorText
                task.pendingTriggers = 0
            }
        case .taskStopRequested:
            break  // acted on by the scheduler; the run's end record carries the outcome
        case .taskTriggered(let name):
            // A disabled task or one in error queues nothing (journals from before `--run` refused it): enabling or
            // resolving it later must not start a pile of runs at once.
            update(name, in: &state) { if !$0.isDisabled, !$0.isError { $0.pendingTriggers += 1 } }
        case .runStarted(let start):
            state.activeRuns[start.runID] = ActiveRun(start: start, startedAt: at)
            update(start.task, in: &state) { task in
                task.lastStartedAt = at
                if let slot = start.slot { task.lastSlot = max(task.lastSlot ?? slot, slot) }
                if start.trigger == .manual { task.pendingTriggers = max(0, task.pendingTriggers - 1) }
            }
        case .runFinished(let end):
            if endsRunOfDeletedTask(end.runID, in: &state) { break }
            let active = state.activeRuns.removeValue(forKey: end.runID)
            // A run that ended before its process began ran nothing: the task's last start (the view's
            // LastExecutionTime, `--list`'s LAST) goes back to the latest run of it that began or is going on.
            let neverBegan = active != nil && RunEnd.neverBegan(message: end.message)
            let stillGoing = neverBegan ? state.activeRuns.values.filter { $0.start.task == end.task }.map(\.startedAt).max() : nil
            update(end.task, in: &state) { task in
                task.lastFinishedAt = at
                task.lastOutcome = end.outcome
                remember(RunSummary(
                    runID: end.runID, slot: active?.start.slot, startedAt: active?.startedAt, finishedAt: at,
                    outcome: end.outcome.rawValue, exitCode: end.exitCode, signal: end.signal, latenessMs: end.latenessMs,
                    attempt: active?.start.attempt ?? 1, trigger: (active?.start.trigger ?? .schedule).rawValue, message: end.message,
                    // A run that could not start has no process to measure: its duration is what the attempt took.
                    measuredMs: end.outcome == .spawnFailed ? nil : end.durationMs), in: &task)
                if neverBegan, task.lastStartedAt == active?.startedAt {
                    task.lastStartedAt = [task.recentRuns.compactMap(\.began).max(), stillGoing].compactMap { $0 }.max()
                }
                // A run refused for want of a resource at that moment is recorded, and its next slot tries again.
                if end.outcome.isFailure, end.final, !end.transient, !task.definition.policy.continueOnError {
                    task.isError = true
                    task.errorText = "[ task error ]: " + (end.message ?? end.outcome.rawValue)
                    task.pendingTriggers = 0
                }
            }
        case .runMissed(let missed):
            update(missed.task, in: &state) { task in
                task.lastSlot = max(task.lastSlot ?? missed.slot, missed.slot)
                remember(RunSummary(
                    runID: "missed-\(missed.slot)", slot: missed.slot, startedAt: nil, finishedAt: at,
                    outcome: "missed(\(missed.reason.rawValue))", exitCode: nil, signal: nil, latenessMs: nil, attempt: 0,
                    trigger: "schedule", message: missed.count > 1 ? "\(missed.count) slots" : nil), in: &task)
            }
        case .runInterrupted(let runID, let name, let givenUp, let endLost):
            if endsRunOfDeletedTask(runID, in: &state) { break }
            let active = state.activeRuns.removeValue(forKey: runID)
            update(name, in: &state) { task in
                // A run whose end a salvage may have lost is no outcome of the task's: its later runs (salvaged) are.
                if endLost == nil {
                    task.lastOutcome = .interrupted
                    task.lastFinishedAt = at
                }
                remember(RunSummary(
                    runID: runID, slot: active?.start.slot, startedAt: active?.startedAt, finishedAt: at, outcome: RunOutcome.interrupted.rawValue,
                    exitCode: nil, signal: nil, latenessMs: nil, attempt: active?.start.attempt ?? 1,
                    trigger: (active?.start.trigger ?? .schedule).rawValue, message: givenUp ?? endLost ?? "the scheduler stopped during the run"), in: &task)
                if let givenUp {
                    // Re-running it again would crash-loop the scheduler: the task waits for `keiji task --resolve`.
                    task.isError = true
                    task.errorText = "[ task error ]: " + givenUp
                    task.pendingTriggers = 0
                }
            }
        case .schedulerStarted:
            state.schedulerRunning = true
            state.schedulerHasStarted = true
        case .schedulerStopped:
            state.schedulerRunning = false
        case .recoveryCompleted(let report):
            state.lastRecovery = report
        }
    }

    /// A record replay could not decode or must not apply (see ``RefusedRecord``): the task it names is put
    /// in error with the reason, a new task name from an unreadable `task.saved` gets a stand-in definition
    /// that never runs, and a record naming no known task changes nothing. Returns the record with its action.
    public static func apply(refused record: RefusedRecord, at: Int64?, to state: inout SchedulerState) -> RefusedRecord {
        var record = record
        if let lsn = record.lsn { state.lastLSN = max(state.lastLSN, lsn) }
        let isDefinition = record.type == "task.saved"
        guard let name = record.task, state.tasks[name] != nil || isDefinition else {
            record.action = "skipped"
            return record
        }
        let at = at ?? state.tasks[name]?.updatedAt ?? 0
        var task: TaskState
        if let known = state.tasks[name] {
            task = known
        } else {
            // A stand-in is a task of its own in the view, so it gets its number like any first save.
            let number = (state.lastTaskNumber ?? 0) + 1
            state.lastTaskNumber = number
            task = TaskState(taskID: name.rawValue, number: number, definition: .standIn(for: name), createdAt: at, updatedAt: at,
                             anchor: at / 1000)
        }
        task.isError = true
        task.errorText = "[ refused ]: \(record.type ?? "record") at LSN \(record.lsn.map(String.init) ?? "?"): \(record.reason)"
        if isDefinition { task.refusal = record.reason }
        task.updatedAt = max(task.updatedAt, at)
        state.tasks[name] = task
        record.action = "task set to error"
        return record
    }

    /// Puts every task whose stored definition today's rules refuse in error (a checkpoint written under
    /// older rules), and returns one ``RefusedRecord`` per task it newly refused.
    public static func refuseInvalidDefinitions(in state: inout SchedulerState) -> [RefusedRecord] {
        var refused: [RefusedRecord] = []
        for name in state.tasks.keys.sorted() where state.tasks[name]?.refusal == nil {
            refuseIfInvalid(name, "definition in the checkpoint", in: &state)
            if let reason = state.tasks[name]?.refusal {
                refused.append(RefusedRecord(lsn: nil, type: "task.saved", task: name, reason: reason, action: "task set to error"))
            }
        }
        return refused
    }

    /// Checks a task's definition against today's ranges: refused puts the task in error; valid ends an
    /// earlier refusal (and the error it caused).
    private static func refuseIfInvalid(_ name: TaskName, _ source: String, in state: inout SchedulerState) {
        guard var task = state.tasks[name] else { return }
        do {
            _ = try task.definition.validated()
            guard task.refusal != nil else { return }
            task.refusal = nil
            task.isError = false
            task.errorText = ""
        } catch {
            let reason = (error as? KeijiError)?.message ?? "\(error)"
            task.refusal = reason
            task.isError = true
            task.errorText = "[ refused ]: \(source): \(reason)"
        }
        state.tasks[name] = task
    }

    /// Ends `runID` if it is a run of a deleted task (``SchedulerState/runsOfDeletedTasks``): no task's run.
    private static func endsRunOfDeletedTask(_ runID: String, in state: inout SchedulerState) -> Bool {
        guard state.runsOfDeletedTasks?.removeValue(forKey: runID) != nil else { return false }
        if state.runsOfDeletedTasks?.isEmpty == true { state.runsOfDeletedTasks = nil }
        return true
    }

    /// Changes the task in place: a copy out and back would make `recentRuns` shared, and every append copy it.
    private static func update(_ name: TaskName, in state: inout SchedulerState, _ body: (inout TaskState) -> Void) {
        guard let index = state.tasks.index(forKey: name) else { return }
        body(&state.tasks.values[index])
    }

    private static func remember(_ run: RunSummary, in task: inout TaskState) {
        task.recentRuns.append(run)
        if task.recentRuns.count > SchedulerState.recentRunLimit { task.recentRuns.removeFirst(task.recentRuns.count - SchedulerState.recentRunLimit) }
    }
}

extension SchedulerState {
    /// Tasks whose run is in progress (the seed's IsRunning).
    public func isRunning(_ name: TaskName) -> Bool { activeRuns.values.contains { $0.start.task == name } }
}
