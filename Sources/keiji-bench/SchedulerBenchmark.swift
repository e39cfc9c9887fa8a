import ArgumentParser
import Foundation
import KeijiCore
import KeijiJournal
import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji-bench scheduler`: firing lateness with many tasks, RSS per idle task, and startup time after a
/// long journal, each beside the machine's own limit measured in the same run.
struct SchedulerBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Firing lateness (no-spawn and spawning), RSS per idle task, startup after a long journal."
    )

    @Option(help: "Tasks on 1-second intervals in the no-spawn phase.") var tasks = 10_000
    @Option(help: "Idle tasks in the RSS-per-task phase (default: --tasks).") var rssTasks: Int?
    @Option(help: "Spawning tasks (each runs /bin/true every second) as a fraction of the measured keiji spawn rate.")
    var spawnFraction = 0.5
    @Option(help: "Seconds measured per lateness phase (after 2 s of warm-up).") var seconds = 8
    @Option(help: "Journal records before the startup measurement.") var startupRecords = 1_000_000
    @Option(help: "Parent directory for the scratch workspaces.") var directory = "/tmp"
    @Option(help: "Phases to run, comma-separated, from: rss, sleep, nospawn, spawn, startup (default: all of them).")
    var phases = "rss,sleep,nospawn,spawn,startup"
    @Flag(help: "Print the figures as JSON on stdout (the table goes to stderr).") var json = false
    @Flag(help: "Count the /metrics figures as METRICS_PORT does (runs, lateness, journal commits), to see what counting costs.")
    var metrics = false

    func run() async throws {
        let selected = Set(phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let known: Set<String> = ["rss", "sleep", "nospawn", "spawn", "startup"]
        guard !selected.isEmpty, selected.isSubset(of: known) else {
            throw ValidationError("--phases must be a comma-separated list of \(known.sorted().joined(separator: ", ")) (got \(phases))")
        }
        var report = SchedulerReport()
        if selected.contains("rss") {
            progress("RSS per idle task (\(rssTasks ?? tasks) tasks)…")
            report.rss = try await measureRSS()
        }
        if selected.contains("sleep") {
            progress("raw sleep lateness: clock_nanosleep on one thread (\(seconds) s)…")
            report.rawNanosleep = Self.nanosleepLateness(seconds: Double(seconds))
            progress("runtime sleep lateness: \(tasks) bare Task.sleep loops (\(seconds) s)…")
            report.rawTaskSleep = await Self.taskSleepLateness(tasks: tasks, seconds: seconds)
        }
        if selected.contains("nospawn") {
            progress("scheduler, \(tasks) tasks every 1 s, no spawn (\(seconds + 2) s)…")
            report.noSpawn = try await measureLateness(taskCount: tasks, spawn: false)
        }
        if selected.contains("spawn") {
            progress("spawn limit: posix_spawn + waitpid of /bin/true, directly and through keiji's spawn path (2 × 3 s)…")
            let spawn = try await SpawnBenchmark.measure(seconds: 3, directory: directory)
            report.spawnLimit = spawn.raw
            report.keijiSpawnRate = spawn.keiji
            let spawnTasks = max(1, Int(spawnFraction * (report.keijiSpawnRate > 0 ? report.keijiSpawnRate : report.spawnLimit)))
            progress("scheduler, \(spawnTasks) tasks every 1 s spawning /bin/true (\(seconds + 2) s)…")
            report.spawn = try await measureLateness(taskCount: spawnTasks, spawn: true)
        }
        if selected.contains("startup") {
            progress("startup after \(startupRecords) journal records…")
            report.startup = try await measureStartup()
        }

        let text = report.table(tasks: tasks)
        if json {
            StandardError.write(text)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(text, terminator: "")
        }
    }

    func progress(_ line: String) { StandardError.write(line + "\n") }

    // MARK: - Phases

    /// A scratch HOME with settings and `count` interval tasks whose save times are spread over one second
    /// (as tasks created at different moments are).
    func workspace(taskCount: Int, every seconds: Int, action: TaskAction) async throws -> (Workspace, String) {
        let root = directory + "/keiji-bench-sched-" + UUID().uuidString.prefix(8)
        let workspace = Workspace(home: root)
        try FileSystem.createDirectory(workspace.tasksDirectory)
        try Settings.defaultFileContents(timeZone: "UTC").write(toFile: workspace.settingsFile, atomically: true, encoding: .utf8)
        try workspace.createSystemDirectories()
        var options = JournalOptions()
        options.durability = .none
        let journal = try Journal.open(directory: workspace.journalDirectory, options: options)
        let base = Int64(Date().timeIntervalSince1970) * 1000
        var batch: [[UInt8]] = []
        for index in 0..<taskCount {
            let name = try TaskName("bench-\(index)")
            let definition = TaskDefinition(name: name, description: "benchmark task", action: action,
                                            schedule: ScheduleSpec(.every(seconds, .seconds)), directory: workspace.tasksDirectory)
            let at = base + Int64(index) * 1000 / Int64(max(1, taskCount))
            batch.append(try JournalEntry(at: at, .taskSaved(definition, taskID: "bench-\(index)")).encoded())
            if batch.count == 1000 { _ = try await journal.append(contentsOf: batch); batch.removeAll() }
        }
        if !batch.isEmpty { _ = try await journal.append(contentsOf: batch) }
        try await journal.close()
        return (workspace, root)
    }

    func engine(_ workspace: Workspace, spawn: Bool) throws -> SchedulerEngine {
        var configuration = SchedulerConfiguration(workspace: workspace, settings: try Settings.load(from: workspace.settingsFile))
        configuration.spawnProcesses = spawn
        configuration.recordLateness = true
        configuration.shutdownGrace = .seconds(5)
        if metrics {
            let counting = SchedulerMetrics()
            configuration.metrics = counting
            configuration.journalOptions.observer = { counting.journalCommitted($0) }
        }
        return SchedulerEngine(configuration: configuration)
    }

    func measureLateness(taskCount: Int, spawn: Bool) async throws -> LatenessPhase {
        let (workspace, root) = try await workspace(taskCount: taskCount, every: 1,
                                                    action: spawn ? .binary(path: "/bin/true") : .command("true"))
        defer { try? FileManager.default.removeItem(atPath: root) }
        let engine = try engine(workspace, spawn: spawn)
        try await engine.start()
        await engine.waitForView()  // the view's first build is start-up work, not part of the steady state measured
        try await Task.sleep(for: .seconds(2))
        _ = await engine.takeLatenessSamples()
        let before = Self.usage()
        let flushesBefore = await engine.viewFlushes
        try await Task.sleep(for: .seconds(seconds))
        let samples = await engine.takeLatenessSamples()
        let after = Self.usage()
        let flushes = await engine.viewFlushes - flushesBefore
        await engine.stop()
        let runs = Double(Swift.max(1, samples.start.count))
        let cpu = after.cpu - before.cpu
        return LatenessPhase(
            tasks: taskCount, expectedPerSecond: Double(taskCount), firedPerSecond: Double(samples.start.count) / Double(seconds),
            wake: Percentiles(samples.wake), start: Percentiles(samples.start), cpuCoresUsed: cpu / Double(seconds),
            cpuMicrosecondsPerRun: cpu * 1e6 / runs,
            contextSwitchesPerRun: Double(after.contextSwitches - before.contextSwitches) / runs,
            viewFlushesPerSecond: Double(flushes) / Double(seconds))
    }

    func measureRSS() async throws -> RSSPhase {
        let count = rssTasks ?? tasks
        let (workspace, root) = try await workspace(taskCount: count, every: 3600, action: .command("true"))
        defer { try? FileManager.default.removeItem(atPath: root) }
        // The configuration (settings, and with them the time zone's data: ~2.4 MB) exists before any task is
        // loaded and does not grow with the tasks, so it is part of the baseline.
        let engine = try engine(workspace, spawn: false)
        let before = Self.residentBytes()
        try await engine.start()
        await engine.waitForView()
        try await Task.sleep(for: .seconds(1))
        let after = Self.residentBytes()
        await engine.stop()
        return RSSPhase(tasks: count, before: before, after: after)
    }

    func measureStartup() async throws -> StartupPhase {
        let (workspace, root) = try await workspace(taskCount: 1000, every: 60, action: .command("true"))
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Fill the journal the way the scheduler does: run.started/run.finished pairs, a checkpoint every
        // 50,000 records (SchedulerConfiguration.checkpointEvery), and a crash at the end (no clean stop).
        var options = JournalOptions()
        options.durability = .none
        let journal = try Journal.open(directory: workspace.journalDirectory, options: options)
        var state = try StateLoader.load(from: journal).state
        var batch: [(JournalEntry)] = [JournalEntry(at: Int64(Date().timeIntervalSince1970 * 1000), .schedulerStarted(pid: 1))]
        var written = Int(journal.lastLSN)
        var sinceCheckpoint = 0
        var run = 0
        let fillStarted = ContinuousClock.now
        while written < startupRecords {
            let task = try TaskName("bench-\(run % 1000)")
            let at = Int64(Date().timeIntervalSince1970 * 1000)
            let id = "run-\(run)"
            batch.append(JournalEntry(at: at, .runStarted(RunStart(runID: id, task: task, slot: at / 1000, attempt: 1, trigger: .schedule))))
            batch.append(JournalEntry(at: at + 3, .runFinished(RunEnd(runID: id, task: task, outcome: .succeeded, exitCode: 0, signal: nil,
                                                                      durationMs: 3, latenessMs: 1, final: true, message: nil))))
            run += 1
            if batch.count >= 2000 || written + batch.count >= startupRecords {
                let range = try await journal.append(contentsOf: batch.map { try $0.encoded() })
                for (offset, entry) in batch.enumerated() { Reducer.apply(entry, lsn: range.lowerBound + UInt64(offset), to: &state) }
                written += batch.count
                sinceCheckpoint += batch.count
                batch.removeAll()
                if sinceCheckpoint >= 50_000 {
                    try await journal.writeCheckpoint(try StateLoader.snapshot(state), at: state.lastLSN)
                    sinceCheckpoint = 0
                }
            }
        }
        try await journal.close()
        let fill = (ContinuousClock.now - fillStarted)
        let parts = try StartupParts.measure(journal: workspace.journalDirectory, scratch: root + "/parts", workspace: workspace)
        let engine = try engine(workspace, spawn: false)
        let clock = ContinuousClock.now
        let report = try await engine.start()
        let startup = ContinuousClock.now - clock
        await engine.waitForView()
        let viewCurrent = ContinuousClock.now - clock
        await engine.stop()
        return StartupPhase(records: written, fillSeconds: fill.seconds, startupSeconds: startup.seconds, viewCurrentSeconds: viewCurrent.seconds,
                            replayed: report.journal.recordsReplayed, replaySeconds: report.journal.replaySeconds,
                            checkpointLSN: report.journal.checkpointLSN ?? 0, parts: parts)
    }

    // MARK: - Limits

    static func nanosleepLateness(seconds: Double) -> Percentiles {
        var samples: [Int64] = []
        var next = timespec()
        clock_gettime(CLOCK_MONOTONIC, &next)
        let end = Double(next.tv_sec) + seconds
        while Double(next.tv_sec) < end {
            next.tv_nsec += 1_000_000
            if next.tv_nsec >= 1_000_000_000 { next.tv_nsec -= 1_000_000_000; next.tv_sec += 1 }
            var target = next
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &target, nil) == EINTR {}
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            samples.append((Int64(now.tv_sec) - Int64(next.tv_sec)) * 1_000_000 + (Int64(now.tv_nsec) - Int64(next.tv_nsec)) / 1000)
        }
        return Percentiles(samples)
    }

    /// `tasks` Swift tasks, each sleeping to its own deadline every second (phases spread over the second):
    /// what the concurrency runtime alone achieves, with no scheduler work.
    static func taskSleepLateness(tasks: Int, seconds: Int) async -> Percentiles {
        let start = Self.wallMicroseconds() / 1_000_000 + 1
        let samples = await withTaskGroup(of: [Int64].self) { group in
            for index in 0..<tasks {
                group.addTask {
                    var mine: [Int64] = []
                    let phase = Int64(index) * 1_000_000 / Int64(tasks)
                    for second in 0..<Int64(seconds) {
                        let deadline = (start + second) * 1_000_000 + phase
                        let wait = deadline - Self.wallMicroseconds()
                        if wait > 0 { try? await Task.sleep(for: .microseconds(wait), tolerance: .zero) }
                        mine.append(Self.wallMicroseconds() - deadline)
                    }
                    return mine
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        return Percentiles(samples)
    }

    static func spawnRate(_ command: [String], seconds: Double) -> Double {
        var count = 0
        let end = Date().addingTimeInterval(seconds)
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        while Date() < end {
            var pid: pid_t = 0
            guard posix_spawn(&pid, command[0], nil, nil, argv, environ) == 0 else { break }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            count += 1
        }
        return Double(count) / seconds
    }

    static func wallMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// This process's CPU seconds and context switches (voluntary and not), summed over its threads. The switches
    /// count the hand-offs between threads a run costs (the timer loop, the journal's writer, the pool, the spawn
    /// thread): in a VM each costs several microseconds of the kernel's time.
    static func usage() -> (cpu: Double, contextSwitches: Int) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return (cpu, usage.ru_nvcsw + usage.ru_nivcsw)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
