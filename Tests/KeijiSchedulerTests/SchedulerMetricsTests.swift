import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// The `keiji_…` metrics: what each feed registers and how it renders (Prometheus text format), the bearer
/// check of `GET /metrics`, and an engine counting real runs.
struct SchedulerMetricsTests {
    func text(_ metrics: SchedulerMetrics) -> String { String(decoding: metrics.render(), as: UTF8.self) }

    /// The value of the one sample line that starts with `series` followed by a space.
    func sample(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func everyMetricIsRegisteredWithHelpAndRendersBeforeAnythingHappens() {
        let text = text(SchedulerMetrics())
        for (name, type) in [("keiji_run_duration_seconds", "histogram"), ("keiji_run_start_lateness_seconds", "histogram"),
                             ("keiji_journal_append_latency_seconds", "histogram"), ("keiji_journal_fsync_duration_seconds", "histogram"),
                             ("keiji_journal_bytes_written_total", "counter"), ("keiji_journal_records_written_total", "counter"),
                             ("keiji_journal_compression_ratio", "gauge"), ("keiji_bus_commands_total", "counter"),
                             ("keiji_tasks", "gauge"), ("keiji_runs_in_progress", "gauge"), ("keiji_database_statements_total", "counter")] {
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name) is a \(type)\n\(text)")
            #expect(text.contains("# HELP \(name) "), "\(name) has help text")
        }
        #expect(sample(text, "keiji_run_duration_seconds_bucket{le=\"+Inf\"}") == 0, "an empty histogram still renders\n\(text)")
        #expect(sample(text, "keiji_bus_commands_total{result=\"rejected\"}") == 0)
        #expect(sample(text, "keiji_tasks{state=\"error\"}") == 0)
    }

    /// A scrape adds the statements the process's connections sent since the one before (other tests' connections
    /// in this process may add more meanwhile, never fewer).
    @Test func aScrapeCountsTheDatabaseStatementsSentSinceTheLastOne() {
        let metrics = SchedulerMetrics()
        metrics.update(MetricsSnapshot())
        let first = sample(text(metrics), "keiji_database_statements_total") ?? -1
        PostgresConnection.statementsInProcess.add(5, ordering: .relaxed)
        metrics.update(MetricsSnapshot())
        let second = sample(text(metrics), "keiji_database_statements_total") ?? -1
        #expect(first >= 0 && second - first >= 5, "\(first) then \(second)")
    }

    @Test func runsCountByTaskAndOutcomeAndFillTheHistograms() throws {
        let metrics = SchedulerMetrics()
        var series = RunSeries()
        let backup = try TaskName("backup"), report = try TaskName("report")
        series.finished(backup, .succeeded, durationMilliseconds: 40, metrics: metrics)
        series.finished(backup, .succeeded, durationMilliseconds: 2_000, metrics: metrics)
        series.finished(backup, .failed, durationMilliseconds: 7, metrics: metrics)
        series.finished(report, .timedOut, durationMilliseconds: 600_000, metrics: metrics)
        metrics.runStarted(latenessMilliseconds: 3)
        metrics.runStarted(latenessMilliseconds: 1_500)
        let text = text(metrics)
        #expect(text.contains("# HELP keiji_runs_finished_total Runs finished, by task and outcome"))
        #expect(sample(text, #"keiji_runs_finished_total{task="backup",outcome="succeeded"}"#) == 2, "\(text)")
        #expect(sample(text, #"keiji_runs_finished_total{task="backup",outcome="failed"}"#) == 1)
        #expect(sample(text, #"keiji_runs_finished_total{task="report",outcome="timedOut"}"#) == 1)
        #expect(sample(text, "keiji_run_duration_seconds_count") == 4)
        #expect(sample(text, #"keiji_run_duration_seconds_bucket{le="0.05"}"#) == 2, "7 ms and 40 ms")
        #expect(sample(text, #"keiji_run_duration_seconds_bucket{le="+Inf"}"#) == 4)
        #expect(abs((sample(text, "keiji_run_duration_seconds_sum") ?? 0) - 602.047) < 1e-6)
        #expect(sample(text, "keiji_run_start_lateness_seconds_count") == 2)
        #expect(sample(text, #"keiji_run_start_lateness_seconds_bucket{le="0.005"}"#) == 1, "3 ms late")
    }

    @Test func journalCommitsBusCommandsRecoveryAndTaskStates() throws {
        let metrics = SchedulerMetrics()
        var commit = JournalCommitStatistics()
        (commit.records, commit.recordBytes, commit.bytesWritten) = (10, 3_000, 1_000)
        commit.syncSeconds = 0.002
        commit.appendSeconds = [0.003, 0.004]
        metrics.journalCommitted(commit)
        var timerSync = JournalCommitStatistics()
        timerSync.syncSeconds = 0.0001
        metrics.journalCommitted(timerSync)
        metrics.busCommandAnswered(acknowledged: true)
        metrics.busCommandAnswered(acknowledged: true)
        metrics.busCommandAnswered(acknowledged: false)
        var report = RecoveryReport(startedAt: 0, previousShutdown: .crash)
        report.durationSeconds = 0.25
        report.journal.recordsReplayed = 1234
        report.interruptedRuns = [.init(task: try TaskName("a"), runID: "r1", slot: 60, startedAt: 1, action: "re-run")]
        report.missedSlots = [.init(task: try TaskName("b"), policy: .all, count: 5, firstSlot: 0, lastSlot: 240, runs: 5)]
        metrics.recovered(report)
        var snapshot = MetricsSnapshot()
        snapshot.tasks = [.scheduled: 3, .running: 1, .disabled: 2]
        snapshot.runsInProgress = 1
        metrics.update(snapshot)

        let text = text(metrics)
        #expect(sample(text, "keiji_journal_records_written_total") == 10, "\(text)")
        #expect(sample(text, "keiji_journal_bytes_written_total") == 1_000)
        #expect(sample(text, "keiji_journal_compression_ratio") == 3)
        #expect(sample(text, "keiji_journal_append_latency_seconds_count") == 2)
        #expect(sample(text, "keiji_journal_fsync_duration_seconds_count") == 2, "the batch's sync and the timer's")
        #expect(sample(text, #"keiji_bus_commands_total{result="acknowledged"}"#) == 2)
        #expect(sample(text, #"keiji_bus_commands_total{result="rejected"}"#) == 1)
        #expect(sample(text, "keiji_recovery_duration_seconds") == 0.25)
        #expect(sample(text, "keiji_recovery_records_replayed") == 1234)
        #expect(sample(text, "keiji_recovery_interrupted_runs") == 1 && sample(text, "keiji_recovery_rerun_runs") == 1)
        #expect(sample(text, "keiji_recovery_missed_slots") == 5 && sample(text, "keiji_recovery_catch_up_runs") == 5)
        #expect(sample(text, "keiji_recovery_after_crash") == 1)
        #expect(text.contains("# HELP keiji_recovery_records_replayed "))
        #expect(sample(text, #"keiji_tasks{state="scheduled"}"#) == 3 && sample(text, #"keiji_tasks{state="running"}"#) == 1)
        #expect(sample(text, #"keiji_tasks{state="disabled"}"#) == 2 && sample(text, #"keiji_tasks{state="error"}"#) == 0)
        #expect(sample(text, "keiji_runs_in_progress") == 1)
    }

    @Test func onlyTheBusTokenAsABearerIsLetIn() {
        let token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        #expect(MetricsEndpoint.isAuthorized("Bearer \(token)", token: token))
        // The scheme in any case (RFC 9110): `bearer` was refused 401.
        #expect(MetricsEndpoint.isAuthorized("bearer \(token)", token: token) && MetricsEndpoint.isAuthorized("BEARER \(token)", token: token))
        for wrong in [nil, "", "Bearer", "Bearer ", "Bearer \(token.dropLast())", "Bearer \(token)0", "Basic \(token)", token,
                      "Bearer \(token.dropLast())0", "bearer x"] {
            #expect(!MetricsEndpoint.isAuthorized(wrong, token: token), "\(wrong ?? "no header")")
        }
        #expect(!MetricsEndpoint.isAuthorized("Bearer ", token: ""), "an empty token lets nobody in")
    }

    /// The engine and the journal feed the metrics on their real paths: runs of a command task are counted by
    /// task and outcome, and the journal's commits reach the journal metrics.
    @Test func anEngineCountsItsRunsAndItsJournalCommits() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("tick", "true"))
        let metrics = SchedulerMetrics()
        var configuration = SchedulerConfiguration(workspace: harness.workspace, settings: harness.settings)
        configuration.shutdownGrace = .seconds(2)
        configuration.metrics = metrics
        configuration.journalOptions.observer = { metrics.journalCommitted($0) }
        let engine = SchedulerEngine(configuration: configuration)
        try await engine.start()
        let counted = await harness.wait {
            (sample(text(metrics), #"keiji_runs_finished_total{task="tick",outcome="succeeded"}"#) ?? 0) >= 2
        }
        await engine.stop()
        let scrape = text(metrics)
        #expect(counted, "\(scrape)")
        #expect((sample(scrape, "keiji_run_duration_seconds_count") ?? 0) >= 2)
        #expect((sample(scrape, "keiji_run_start_lateness_seconds_count") ?? 0) >= 2)
        #expect((sample(scrape, "keiji_journal_records_written_total") ?? 0) >= 4, "run.started and run.finished each")
        #expect((sample(scrape, "keiji_journal_bytes_written_total") ?? 0) > 0)
        #expect((sample(scrape, "keiji_journal_append_latency_seconds_count") ?? 0) >= 2)
        #expect((sample(scrape, "keiji_journal_fsync_duration_seconds_count") ?? 0) >= 1)
        #expect(scrape.contains("keiji_recovery_duration_seconds "), "the start's recovery is published")
    }
}
