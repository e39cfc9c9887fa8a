/// When `keiji task --run` may queue a run, decided against the journal's state (the engine's live state
/// online, the replayed state offline), so the bus and offline paths answer the same. A refused trigger is
/// never journaled, so triggers cannot pile up and all start at once later.
public enum RunNowRule {
    public static func check(_ name: TaskName, in state: SchedulerState) throws {
        guard let task = state.tasks[name] else { throw KeijiError(.notFound, "no task named \(name)") }
        if task.isDisabled {
            throw KeijiError(.refused, "task \(name) is disabled: not run; enable it first with `keiji task --enable --name=\(name)`")
        }
        if task.isError {
            throw KeijiError(.refused, "task \(name) is in error (\(task.errorText)): not run; clear it first with `keiji task --resolve --name=\(name)`")
        }
        guard task.definition.policy.overlap == .skip else { return }  // `allow`: runs may overlap, each --run starts one
        if state.isRunning(name) {
            throw KeijiError(.refused, "task \(name) is already running and its overlap policy is skip: not queued (stop the run with `keiji task --stop --name=\(name)`)")
        }
        if task.isQueued {
            throw KeijiError(.refused, "task \(name) already has a run queued and its overlap policy is skip: not queued again")
        }
    }
}

/// When `keiji task --stop` has something to stop: a run in progress. Stopping nothing is refused (exit 1,
/// nothing journaled) rather than reported as done.
public enum StopRule {
    public static func check(_ name: TaskName, in state: SchedulerState) throws {
        guard state.tasks[name] != nil else { throw KeijiError(.notFound, "no task named \(name)") }
        guard state.isRunning(name) else { throw KeijiError(.refused, "task \(name) has no run in progress: nothing to stop") }
    }
}
