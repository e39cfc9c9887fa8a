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
    let databaseStatements: Counter
    /// ``PostgresConnection/statementsInProcess`` as of the last scrape: each scrape adds what was sent since.
    private let statementsReported = Atomic<Int>(0)

    /// Raw record bytes and bytes written since start: the compression ratio is their quotient. Only the journal's
    /// writer thread adds to them; atomics so a scrape could read them too.
    private let recordBytesTotal = Atomic<Int>(0)
    private let bytesWrittenTotal = Atomic<Int>(0)

    /// `keiji_<subsystem>_<metric>_<unit>`: the unit is `seconds`, `bytes`, `total` (counters) or empty.
    static func named(_ subsystem: String?, _ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "keiji", subsystem: subsystem, metricName: metric, unitName: unit, helpText: help)
    }

    /// A function, not a stored descriptor: `MetricNameDescriptor` is not `Sendable`.
    static func runsFinished() -> MetricNameDescriptor {
        named("runs", "finished", "total", "Runs finished, by task and outcome (succeeded, failed, timedOut, stopped, spawnFailed, interrupted).")
    }

    public init() {
        runDuration = registry.makeValueHistogram(
            descriptor: Self.named("run", "duration", "seconds", "How long finished runs took, from spawn to exit."),
            buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600])
        startLateness = registry.makeValueHistogram(
            descriptor: Self.named("run", "start_lateness", "seconds",
                                   "How late runs started against their slot (manual and catch-up runs count from when they were fired)."),
            buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60])
        let ioBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
        journalAppendLatency = registry.makeValueHistogram(
            descriptor: Self.named("journal", "append_latency", "seconds",
                                   "Journal appends from the call to the acknowledgement (queueing, group commit write and sync)."),
            buckets: ioBuckets)
        journalSyncDuration = registry.makeValueHistogram(
            descriptor: Self.named("journal", "fsync_duration", "seconds", "Duration of the journal's fdatasync calls, one per group commit."),
            buckets: ioBuckets)
        journalBytesWritten = registry.makeCounter(
            descriptor: Self.named("journal", "bytes_written", "total", "Bytes written to journal segments for records (framed, compressed)."))
        journalRecordsWritten = registry.makeCounter(
            descriptor: Self.named("journal", "records_written", "total", "Records appended to the journal."))
        journalCompressionRatio = registry.makeGauge(
            descriptor: Self.named("journal", "compression_ratio", "",
                                   "Record bytes appended divided by bytes written for them since the scheduler started (above 1: compression saves space)."))
        let busCommands = Self.named("bus", "commands", "total", "Commands relayed by keiji-bus, by result (acknowledged once durable, or rejected).")
        busCommandsAcknowledged = registry.makeCounter(descriptor: busCommands, labels: [("result", "acknowledged")])
        busCommandsRejected = registry.makeCounter(descriptor: busCommands, labels: [("result", "rejected")])
        runsInProgress = registry.makeGauge(descriptor: Self.named("runs", "in_progress", "", "Runs started and not yet finished."))
        let tasksByState = Self.named(nil, "tasks", "", "Tasks by state: running, queued (a manual run waits), error, disabled, scheduled.")
        var tasks: [TaskStateLabel: Gauge] = [:]
        for state in TaskStateLabel.allCases {
            tasks[state] = registry.makeGauge(descriptor: tasksByState, labels: [("state", state.rawValue)])
        }
        self.tasks = tasks
        databaseStatements = registry.makeCounter(
            descriptor: Self.named("database", "statements", "total",
                                   "Statements sent to the PostgreSQL database (DB_URL), as round trips: claims, heartbeats, command polls, view flushes with their BEGIN and COMMIT."))
    }

    // MARK: - Runs

    /// The counter of `task`'s runs that ended with `outcome`; the engine keeps what this returns (``RunSeries``).
    func runsFinishedCounter(task: TaskName, outcome: RunOutcome) -> Counter {
        registry.makeCounter(descriptor: Self.runsFinished(), labels: [("task", task.rawValue), ("outcome", outcome.rawValue)])
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
            let (metric, unit) = name.hasSuffix("_seconds") ? (String(name.dropLast("_seconds".count)), "seconds") : (name, "")
            registry.makeGauge(descriptor: Self.named("recovery", metric, unit, help)).set(value)
        }
        gauge("duration_seconds", "How long the last start's recovery took.", report.durationSeconds)
        gauge("replay_seconds", "How long the last recovery spent replaying the journal.", report.journal.replaySeconds)
        gauge("records_replayed", "Journal records the last recovery replayed.", Double(report.journal.recordsReplayed))
        gauge("bytes_repaired", "Journal bytes the last recovery repaired (torn tails cut, quarantines).",
              Double(report.journal.bytesRepaired))
        gauge("interrupted_runs", "Runs the last recovery found interrupted by a crash.", Double(report.interruptedRuns.filter { !$0.endMayBeLost }.count))
        gauge("rerun_runs", "Interrupted runs the last recovery started again.",
              Double(report.interruptedRuns.filter { $0.action == "re-run" }.count))
        gauge("missed_slots", "Slots missed while the scheduler was down, found by the last recovery.",
              Double(report.missedSlots.reduce(0) { $0 + $1.count }))
        gauge("catch_up_runs", "Catch-up runs the last recovery started for missed slots.",
              Double(report.missedSlots.reduce(0) { $0 + $1.runs }))
        gauge("commands_reapplied", "Commands journaled but missing from the query view, applied by the last recovery.",
              Double(report.commandsReapplied))
        gauge("refused_records", "Records the last recovery could not apply (their tasks are in error).",
              Double(report.refusedRecords?.count ?? 0))
        gauge("after_crash", "1 when the last start followed a crash (no clean shutdown), else 0.",
              report.previousShutdown == .crash ? 1 : 0)
    }

    func busCommandAnswered(acknowledged: Bool) {
        (acknowledged ? busCommandsAcknowledged : busCommandsRejected).increment()
    }

    /// Sets the gauges read from the engine's state at scrape time, and adds the database statements sent since the last scrape.
    public func update(_ snapshot: MetricsSnapshot) {
        for state in TaskStateLabel.allCases { tasks[state]?.set(Double(snapshot.tasks[state] ?? 0)) }
        runsInProgress.set(Double(snapshot.runsInProgress))
        // Moved forward only, by the scrape that moves it: two scrapes at once count each statement once.
        let sent = PostgresConnection.statementsInProcess.load(ordering: .relaxed)
        var reported = statementsReported.load(ordering: .relaxed)
        while sent > reported {
            let (moved, current) = statementsReported.compareExchange(expected: reported, desired: sent, ordering: .relaxed)
            if moved {
                databaseStatements.increment(by: Int64(sent - reported))
                break
            }
            reported = current
        }
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
