import KeijiCore
import Prometheus

/// The engine's cache of `keiji_runs_finished_total` series: looked up in the registry once per task and
/// outcome, then a finish costs one atomic increment (the registry's lookup takes a lock and builds labels).
struct RunSeries {
    private struct Key: Hashable {
        var task: TaskName
        var outcome: RunOutcome
    }

    private var counters: [Key: Counter] = [:]

    mutating func finished(_ task: TaskName, _ outcome: RunOutcome, durationMilliseconds: Int64, metrics: SchedulerMetrics) {
        let key = Key(task: task, outcome: outcome)
        if let counter = counters[key] {
            counter.increment()
        } else {
            let counter = metrics.runsFinishedCounter(task: task, outcome: outcome)
            counters[key] = counter
            counter.increment()
        }
        metrics.runDuration.record(Double(max(0, durationMilliseconds)) / 1000)
    }
}
