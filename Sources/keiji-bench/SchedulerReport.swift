import Foundation

/// p50/p99/max of a set of samples in microseconds (nearest rank).
struct Percentiles: Codable, Sendable {
    var count = 0
    var p50 = 0.0, p99 = 0.0, max = 0.0

    init(_ samples: [Int64]) {
        guard !samples.isEmpty else { return }
        let sorted = samples.sorted()
        func rank(_ p: Double) -> Double { Double(sorted[Swift.min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)]) }
        count = sorted.count
        p50 = rank(0.50)
        p99 = rank(0.99)
        max = Double(sorted.last!)
    }

    var row: [String] { [Self.format(p50), Self.format(p99), Self.format(max), FigureFormat.count(count)] }

    static func format(_ microseconds: Double) -> String {
        abs(microseconds) >= 1000 ? FigureFormat.fixed(microseconds / 1000, 2) + " ms" : FigureFormat.fixed(microseconds, 0) + " µs"
    }
}

struct LatenessPhase: Codable, Sendable {
    var tasks: Int
    var expectedPerSecond: Double
    var firedPerSecond: Double
    var wake: Percentiles
    var start: Percentiles
    var cpuCoresUsed: Double
    /// The benchmark process's CPU time and context switches over the window, per run started.
    var cpuMicrosecondsPerRun: Double
    var contextSwitchesPerRun: Double
    /// How often the query view was written in the window: each flush starts `viewFlushInterval` after the last
    /// one ended, so fewer than five a second when flushes take long.
    var viewFlushesPerSecond: Double

    var costPerRun: String {
        "\(FigureFormat.fixed(cpuCoresUsed, 2)) cores (\(FigureFormat.fixed(cpuMicrosecondsPerRun, 0)) µs of CPU and "
            + "\(FigureFormat.fixed(contextSwitchesPerRun, 1)) context switches a run; view written "
            + "\(FigureFormat.fixed(viewFlushesPerSecond, 1)) times a second)"
    }
}

struct RSSPhase: Codable, Sendable {
    var tasks: Int
    var before: Int
    var after: Int
    var perTask: Double { Double(after - before) / Double(Swift.max(1, tasks)) }
}

struct StartupPhase: Codable, Sendable {
    var records: Int
    var fillSeconds: Double
    var startupSeconds: Double
    /// From the start until the query view (rebuilt: the bench has none) showed the recovered state; firing
    /// does not wait for it.
    var viewCurrentSeconds: Double
    var replayed: Int
    var replaySeconds: Double
    var checkpointLSN: UInt64
    var parts: StartupParts
}

struct SchedulerReport: Codable, Sendable {
    var rawNanosleep = Percentiles([])
    var rawTaskSleep = Percentiles([])
    var noSpawn: LatenessPhase?
    var spawnLimit = 0.0
    /// /bin/true runs back to back through keiji's spawn path (RunExecutor → keiji-spawn-server), as every task
    /// run goes: the scheduler's real spawn limit.
    var keijiSpawnRate = 0.0
    var spawn: LatenessPhase?
    var rss: RSSPhase?
    var startup: StartupPhase?

    func table(tasks: Int) -> String {
        var out = "keiji-bench scheduler   \(ISO8601DateFormatter().string(from: Date()))\n\n"
        out += "Firing lateness (time past the slot; wake = the timer loop took the firing, counted from its lead, 0 if taken"
        out += " within the firing window before it;"
        out += " start = the run began: run.started durable, its moment come)\n"
        var table = TextTable(["measure", "p50", "p99", "max", "samples"], alignments: [.left, .right, .right, .right, .right])
        table.add(["limit: clock_nanosleep, one thread, every 1 ms"] + rawNanosleep.row)
        table.add(["limit: \(tasks) bare Task.sleep loops, 1 s"] + rawTaskSleep.row)
        if let noSpawn {
            table.add(["\(noSpawn.tasks) tasks, no spawn: wake"] + noSpawn.wake.row)
            table.add(["\(noSpawn.tasks) tasks, no spawn: start"] + noSpawn.start.row)
        }
        if let spawn {
            table.add(["\(spawn.tasks) tasks spawning /bin/true: wake"] + spawn.wake.row)
            table.add(["\(spawn.tasks) tasks spawning /bin/true: start"] + spawn.start.row)
        }
        out += table.render() + "\n"
        if let noSpawn {
            let verdict = noSpawn.start.p99 <= 5000 ? "PASS" : "MISS"
            out += "  no spawn: \(FigureFormat.count(noSpawn.firedPerSecond)) runs/s of \(FigureFormat.count(noSpawn.expectedPerSecond)) due, "
            out += "\(noSpawn.costPerRun); target p99 start ≤ 5 ms: \(verdict)\n"
        }
        if let spawn {
            out += "  spawning: \(FigureFormat.count(spawn.firedPerSecond)) runs/s of \(FigureFormat.count(spawn.expectedPerSecond)) due; "
            out += "limit (posix_spawn+waitpid on one thread): /bin/true \(FigureFormat.count(spawnLimit))/s, "
            out += "through keiji \(FigureFormat.count(keijiSpawnRate))/s (\(FigureFormat.fixed(keijiSpawnRate / Swift.max(1, spawnLimit), 2))×, "
            out += "target ≥ 0.8×: \(keijiSpawnRate >= 0.8 * spawnLimit ? "PASS" : "MISS")); due = "
            out += "\(FigureFormat.fixed(spawn.expectedPerSecond / Swift.max(1, keijiSpawnRate), 2))× keiji's rate; \(spawn.costPerRun)\n"
        }
        if let rss {
            out += "\nMemory: \(rss.tasks) idle tasks added \(FigureFormat.megabytes(rss.after - rss.before)) RSS "
            out += "(\(FigureFormat.fixed(rss.perTask, 0)) bytes per task; target ≤ 1,024 (issue 10): \(rss.perTask <= 1024 ? "PASS" : "MISS"))\n"
        }
        if let startup {
            out += "\nStartup after \(FigureFormat.count(startup.records)) journal records (checkpoint at LSN \(startup.checkpointLSN), previous shutdown: crash):\n"
            out += "  engine.start() \(FigureFormat.fixed(startup.startupSeconds, 3)) s, of which replay of \(FigureFormat.count(startup.replayed)) records "
            out += "after the checkpoint \(FigureFormat.fixed(startup.replaySeconds, 3)) s; target ≤ 0.3 s: \(startup.startupSeconds <= 0.3 ? "PASS" : "MISS")\n"
            out += "  (firing begins when start() returns; the query view, rebuilt from scratch here, was current \(FigureFormat.fixed(startup.viewCurrentSeconds, 3)) s after the start)\n"
            out += startup.parts.lines
        }
        return out
    }
}
