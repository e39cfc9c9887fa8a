import KeijiCore
import KeijiJournal
import Prometheus
import Synchronization

/// The scheduler's Prometheus metrics (`keiji_…`), registered once and fed from the code paths they describe:
/// the engine's run start and finish, the journal's group commits (``JournalOptions/observer``), the recovery
/// report, and bus commands. ``MetricsEndpoint`` renders them for `GET /metrics`.
///
/// Counting is cheap on purpose: counters are atomics, a histogram observation takes a lock only for the
/// arithmetic (never across I/O), and per-task series are looked up once per task (``RunSeries``).
public final class SchedulerMetrics: Sendable {
    /// The task states `keiji_tasks` counts, as `keiji task --list` names them. Each task is in exactly one.
    public enum TaskStateLabel: String, CaseIterable, Sendable {
        case running, queued, error, disabled, scheduled
    }

    public let registry = PrometheusCollectorRegistry()

    let runDuration: ValueHistogram
    let startLateness: ValueHistogram
    let journalAppendLatency: ValueHistogram
    let journalSyncDuration: ValueHistogram
    let journalBytesWritten: Counter
    let journalRecordsWritten: Counter
    let journalCompressionRatio: Gauge
    let busCommandsAcknowledged: Counter
    let busCommandsRejected: Counter
    let runsInProgress: Gauge
    let tasks: [TaskStateLabel: Gauge]

    /// Raw record bytes and bytes written since start: the compression ratio is their quotient. Only the journal's
    /// writer thread adds to them; atomics so a scrape could read them too.
    private let recordBytesTotal = Atomic<Int>(0)
    private let bytesWrittenTotal = Atomic<Int>(0)

    static let runFinishedName = "keiji_runs_finished_total"
    static let runFinishedHelp = "Runs finished, by task and outcome (succeeded, failed, timedOut, stopped, spawnFailed, interrupted)."

    public init() {
        runDuration = registry.makeValueHistogram(
            name: "keiji_run_duration_seconds", buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
            help: "How long finished runs took, from spawn to exit.")
        startLateness = registry.makeValueHistogram(
            name: "keiji_run_start_lateness_seconds", buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
            help: "How late runs started against their slot (manual and catch-up runs count from when they were fired).")
        let ioBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
        journalAppendLatency = registry.makeValueHistogram(
            name: "keiji_journal_append_latency_seconds", buckets: ioBuckets,
            help: "Journal appends from the call to the acknowledgement (queueing, group commit write and sync).")
        journalSyncDuration = registry.makeValueHistogram(
            name: "keiji_journal_fsync_duration_seconds", buckets: ioBuckets,
            help: "Duration of the journal's fdatasync calls, one per group commit.")
        journalBytesWritten = registry.makeCounter(
            name: "keiji_journal_bytes_written_total", help: "Bytes written to journal segments for records (framed, compressed).")
        journalRecordsWritten = registry.makeCounter(
            name: "keiji_journal_records_written_total", help: "Records appended to the journal.")
        journalCompressionRatio = registry.makeGauge(
            name: "keiji_journal_compression_ratio",
            help: "Record bytes appended divided by bytes written for them since the scheduler started (above 1: compression saves space).")
        let busHelp = "Commands relayed by keiji-bus, by result (acknowledged once durable, or rejected)."
        busCommandsAcknowledged = registry.makeCounter(name: "keiji_bus_commands_total", labels: [("result", "acknowledged")], help: busHelp)
        busCommandsRejected = registry.makeCounter(name: "keiji_bus_commands_total", labels: [("result", "rejected")], help: busHelp)
        runsInProgress = registry.makeGauge(name: "keiji_runs_in_progress", help: "Runs started and not yet finished.")
        var tasks: [TaskStateLabel: Gauge] = [:]
        for state in TaskStateLabel.allCases {
            tasks[state] = registry.makeGauge(
                name: "keiji_tasks", labels: [("state", state.rawValue)],
                help: "Tasks by state: running, queued (a manual run waits), error, disabled, scheduled.")
        }
        self.tasks = tasks
    }

    // MARK: - Runs

    /// The counter of `task`'s runs that ended with `outcome`; the engine keeps what this returns (``RunSeries``).
    func runsFinishedCounter(task: TaskName, outcome: RunOutcome) -> Counter {
        registry.makeCounter(name: Self.runFinishedName, labels: [("task", task.rawValue), ("outcome", outcome.rawValue)],
                             help: Self.runFinishedHelp)
    }

    func runStarted(latenessMilliseconds: Int64) {
        startLateness.record(Double(max(0, latenessMilliseconds)) / 1000)
    }

    // MARK: - Journal

    /// The journal's observer: runs on its writer thread after each group commit, so it only counts.
    public func journalCommitted(_ commit: JournalCommitStatistics) {
        if let seconds = commit.syncSeconds { journalSyncDuration.record(seconds) }
        guard commit.records > 0 else { return }
        for seconds in commit.appendSeconds { journalAppendLatency.record(seconds) }
        journalBytesWritten.increment(by: Int64(commit.bytesWritten))
        journalRecordsWritten.increment(by: Int64(commit.records))
        let raw = recordBytesTotal.add(commit.recordBytes, ordering: .relaxed).newValue
        let written = bytesWrittenTotal.add(commit.bytesWritten, ordering: .relaxed).newValue
        if written > 0 { journalCompressionRatio.set(Double(raw) / Double(written)) }
    }

    // MARK: - Recovery, bus, tasks

    /// Publishes the figures of the recovery this start ran (set once per process).
    public func recovered(_ report: RecoveryReport) {
        func gauge(_ name: String, _ help: String, _ value: Double) {
            registry.makeGauge(name: name, help: help).set(value)
        }
        gauge("keiji_recovery_duration_seconds", "How long the last start's recovery took.", report.durationSeconds)
        gauge("keiji_recovery_replay_seconds", "How long the last recovery spent replaying the journal.", report.journal.replaySeconds)
        gauge("keiji_recovery_records_replayed", "Journal records the last recovery replayed.", Double(report.journal.recordsReplayed))
        gauge("keiji_recovery_bytes_repaired", "Journal bytes the last recovery repaired (torn tails cut, quarantines).",
              Double(report.journal.bytesRepaired))
        gauge("keiji_recovery_interrupted_runs", "Runs the last recovery found interrupted by a crash.", Double(report.interruptedRuns.count))
        gauge("keiji_recovery_rerun_runs", "Interrupted runs the last recovery started again.",
              Double(report.interruptedRuns.filter { $0.action == "re-run" }.count))
        gauge("keiji_recovery_missed_slots", "Slots missed while the scheduler was down, found by the last recovery.",
              Double(report.missedSlots.reduce(0) { $0 + $1.count }))
        gauge("keiji_recovery_catch_up_runs", "Catch-up runs the last recovery started for missed slots.",
              Double(report.missedSlots.reduce(0) { $0 + $1.runs }))
        gauge("keiji_recovery_commands_reapplied", "Commands journaled but missing from the query view, applied by the last recovery.",
              Double(report.commandsReapplied))
        gauge("keiji_recovery_refused_records", "Records the last recovery could not apply (their tasks are in error).",
              Double(report.refusedRecords?.count ?? 0))
        gauge("keiji_recovery_after_crash", "1 when the last start followed a crash (no clean shutdown), else 0.",
              report.previousShutdown == .crash ? 1 : 0)
    }

    func busCommandAnswered(acknowledged: Bool) {
        (acknowledged ? busCommandsAcknowledged : busCommandsRejected).increment()
    }

    /// Sets the gauges read from the engine's state at scrape time.
    public func update(_ snapshot: MetricsSnapshot) {
        for state in TaskStateLabel.allCases { tasks[state]?.set(Double(snapshot.tasks[state] ?? 0)) }
        runsInProgress.set(Double(snapshot.runsInProgress))
    }

    /// The text exposition format (version 0.0.4) of every metric.
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}

/// What a scrape reads from the engine: counted in the actor when asked, never kept up to date on the firing path.
public struct MetricsSnapshot: Sendable, Equatable {
    public var tasks: [SchedulerMetrics.TaskStateLabel: Int] = [:]
    public var runsInProgress = 0
    public init() {}
}
