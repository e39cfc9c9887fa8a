extension SchedulerState {
    /// The latest wall-clock instant the journal's records give (milliseconds): a run's start or end, a slot run or
    /// missed, a command, the last start. Later than the clock at a start, the clock stepped back while the scheduler
    /// was stopped: the tasks' slots up to it have run, so they resume only after it (``RecoveryReport/journalAheadAt``).
    public var latestRecordedInstant: Int64? {
        var latest = lastRecovery?.startedAt
        func consider(_ instant: Int64?) { if let instant { latest = max(latest ?? instant, instant) } }
        for task in tasks.values {
            consider(task.updatedAt)
            consider(task.lastStartedAt)
            consider(task.lastFinishedAt)
            consider(task.lastSlot.map { TimeArithmetic.product($0, 1000) })
        }
        for run in activeRuns.values { consider(run.startedAt) }
        return latest
    }
}
