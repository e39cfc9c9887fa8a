import KeijiCore

/// What a task is owed for slots that passed without firing, under its `catchUp` policy.
struct CatchUpPlan {
    /// Every slot that passed (the ones kept in `toRun` included).
    var total: Int
    var firstSlot: Int64
    var lastSlot: Int64
    /// The slots to run now, oldest first: none (`skip`), the latest (`once`), or up to `catchUpLimit` (`all`).
    var toRun: [Int64]
    /// The slots given up, as one record (nil when every slot runs).
    var missed: RunMissed?
}

/// The one catch-up rule. Restart recovery (slots that passed while the scheduler was down) and the live
/// timer (slots that passed while the process was stopped, the machine suspended, or the clock stepped
/// forward) both ask it, so a stall of the running scheduler ends exactly as a restart would: never with
/// every missed slot fired back to back.
enum CatchUpRule {
    /// The plan for the slots of `task` after `cursor` whose firing time (slot, jitter, sub-second phase) is at
    /// or before `nowMs`, or nil when none passed. A slot of the current second whose moment has not come (a
    /// task with a phase of 0.8 s, at 0.5 s past the second) has not passed: it fires on time, it is not
    /// caught up or skipped. `rerunning`: an interrupted run of the task is being re-run, which covers the
    /// slots (`once`/`all` add none).
    static func plan(for task: TaskState, calculator: ScheduleCalculator, after cursor: Int64, through nowMs: Int64,
                     rerunning: Bool) -> CatchUpPlan? {
        let policy = task.definition.policy
        // The slots that may run, and the one before them: the last slot given up, which the missed record names.
        let keep = (policy.catchUp == .all ? policy.catchUpLimit : 1) + 1
        let window = passedSlots(of: task, calculator: calculator, after: cursor, through: nowMs, limit: keep)
        let total = window.slots.count + window.dropped
        guard total > 0, let last = window.slots.last else { return nil }
        var toRun: [Int64] = []
        switch policy.catchUp {
        case .skip: break
        case .once: if !rerunning { toRun = [last] }
        case .all: if !rerunning { toRun = Array(window.slots.suffix(policy.catchUpLimit)) }
        }
        let missedCount = total - toRun.count
        var missed: RunMissed?
        if missedCount > 0 {
            let lastMissed = toRun.isEmpty ? last : window.slots[max(0, window.slots.count - toRun.count - 1)]
            missed = RunMissed(task: task.definition.name, slot: lastMissed, count: missedCount, reason: .downtime)
        }
        // The window holds only the newest slots; the first that passed may lie before it.
        let first = window.dropped > 0 ? calculator.nextSlot(after: cursor) ?? window.slots[0] : window.slots[0]
        return CatchUpPlan(total: total, firstSlot: first, lastSlot: last, toRun: toRun, missed: missed)
    }

    /// The slots of `task` after `cursor` whose firing time (slot, jitter, sub-second phase) is at or before `nowMs`:
    /// the newest `limit` of them, oldest first, and how many passed before those.
    static func passedSlots(of task: TaskState, calculator: ScheduleCalculator, after cursor: Int64, through nowMs: Int64,
                            limit: Int) -> (slots: [Int64], dropped: Int) {
        var through = nowMs / 1000
        var window = calculator.slots(after: cursor, through: through, limit: limit)
        // Jitter and phase only delay a slot, so only the newest few slots can still be ahead of `nowMs`.
        while let last = window.slots.last, task.fireTimeMilliseconds(slot: last, calculator: calculator) > nowMs {
            through = last - 1
            window = calculator.slots(after: cursor, through: through, limit: limit)
        }
        return window
    }
}
