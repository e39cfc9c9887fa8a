import KeijiCore

/// Which definition of a task a run was queued under: the task's identity (a task deleted and created again under the
/// same name is another task) and the LSN of its latest `task.saved` that this engine applied or replayed at its start
/// (0: saved before the checkpoint it started from). Catch-ups wait in memory, so this engine applied every save made since they were queued: a queued run
/// whose stamp is no longer its task's is of a definition that is gone, and does not run the new one.
struct DefinitionStamp: Equatable, Sendable {
    var taskID: String
    var savedAt: UInt64
}

/// What a task's queue of catch-ups was planned under: its definition, and its `updatedAt` then (a `--disable`,
/// even if enabled again, or an error and its `--resolve` since end the queue, as they drop queued `--run`s).
struct QueueBasis: Sendable {
    var stamp: DefinitionStamp
    var updatedAt: Int64
}

extension SchedulerEngine {
    /// `name`'s current stamp (nil: no such task).
    func stamp(of name: TaskName) -> DefinitionStamp? {
        state.tasks[name].map { DefinitionStamp(taskID: $0.taskID, savedAt: definitionSaves[name] ?? 0) }
    }

    /// Why work queued under `stamp` must not run now (nil: its definition is still the task's).
    func staleness(of stamp: DefinitionStamp, _ name: TaskName) -> String? {
        guard let current = self.stamp(of: name), current.taskID == stamp.taskID else { return "the task was deleted" }
        return current.savedAt == stamp.savedAt ? nil : "the task was redefined"
    }

    /// Whether `name` was saved again after its run whose `run.started` is at `startLSN` (the checkpoint's LSN when
    /// replay did not read it, the start being at or before it). Only when both that start and the latest save are
    /// in the checkpoint is their order unknown: then any change of the task since `startedAt` counts, as it all did
    /// before (its `updatedAt`: a `--disable` and `--enable` too).
    func redefined(_ name: TaskName, afterRunStartedAt startLSN: UInt64, _ startedAt: Int64, checkpointLSN: UInt64) -> Bool {
        if let saved = definitionSaves[name] { return saved > startLSN }
        return startLSN <= checkpointLSN && (state.tasks[name]?.updatedAt ?? 0) > startedAt
    }

    func queueBasis(of name: TaskName) -> QueueBasis? {
        guard let stamp = stamp(of: name), let task = state.tasks[name] else { return nil }
        return QueueBasis(stamp: stamp, updatedAt: task.updatedAt)
    }

    /// Why the rest of a queue planned under `basis` is dropped now (nil: its next run may start).
    func whyQueueEnds(_ basis: QueueBasis, _ name: TaskName) -> String? {
        if let reason = staleness(of: basis.stamp, name) { return reason }
        guard let task = state.tasks[name] else { return "the task was deleted" }
        if task.isDisabled { return "the task was disabled" }
        if task.isError { return "the task is in error" }
        return task.updatedAt == basis.updatedAt ? nil : "the task was disabled or in error since they were queued"
    }

    /// The record of a queued run dropped (its task redefined, disabled, in error). A catch-up's slot of the schedule
    /// the task still has (its definition unchanged, or a redefinition's slot not before its anchor, which a new
    /// schedule moves to the save) is missed as one the catch-up policy does not run; a slot of the old schedule is
    /// not the task's any more, and a retry ran nothing: the task's log says each was dropped. Work of a deleted task
    /// records nothing: a task created again under its name is another.
    func dropped(_ firing: Firing, because reason: String) -> RunMissed? {
        let what = firing.trigger == .retry ? "retry (attempt \(firing.attempt))" : "catch-up run"
        guard let task = state.tasks[firing.task], task.taskID == firing.stamp?.taskID else {
            note("task \(firing.task): a queued \(what) of a deleted task dropped")
            return nil
        }
        let slot = firing.slot.map { " of slot \(ISO8601.string(fromSeconds: $0))" } ?? ""
        try? LogFile(task: firing.task, workspace: configuration.workspace, settings: configuration.settings)
            .append("[keiji] queued \(what)\(slot) dropped: \(reason)", at: clock.nowMilliseconds())
        let sameDefinition = firing.stamp.map { staleness(of: $0, firing.task) == nil } ?? false
        guard firing.trigger == .catchUp, let slot = firing.slot, sameDefinition || slot >= task.anchor else { return nil }
        return RunMissed(task: firing.task, slot: slot, count: 1, reason: .downtime)
    }
}
