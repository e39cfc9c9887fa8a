/// The variables the scheduler sets in each run's environment. Every process a run starts inherits them, so
/// `KEIJI_RUN_ID` says which run a process belongs to (the scheduler's `OrphanReaper` kills a run's processes by
/// it). A service `keiji system` starts from a run must not carry them, or it would be taken for one of that run's.
public enum RunVariables {
    public static let runID = "KEIJI_RUN_ID"
    public static let taskName = "KEIJI_TASK_NAME"
    /// The scheduler that started the run: a `keiji system --stop` asked from a run of its own scheduler hands off.
    public static let schedulerPID = "KEIJI_SCHEDULER_PID"
    public static let all: Set<String> = [runID, taskName, schedulerPID, "KEIJI_SLOT", "KEIJI_ERROR_FILE", "KEIJI_NODE"]
}
