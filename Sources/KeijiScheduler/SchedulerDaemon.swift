import Dispatch
import Foundation
import KeijiBus
import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The `keiji-scheduler` process: loads settings, starts the engine, takes commands from `keiji-bus`
/// (reconnecting whenever the bus restarts), and turns SIGTERM/SIGINT into a graceful stop.
///
/// It reports `ready` to `readiness` only once recovery has finished, the bus link's first attempt is over and
/// the query view is current, so `keiji system --start` returns when a command would reach it and `--get` shows
/// the recovered state; a start that fails reports
/// `refused` with the reason (journal damage in strict mode, a record it cannot read, bad settings).
///
/// With `METRICS_PORT` set it also serves `GET /metrics` on 127.0.0.1 (``MetricsEndpoint``); a port it cannot
/// bind is logged in one line and the scheduler runs on without metrics. `DASHBOARD_PORT` does the same for the
/// web dashboard (``DashboardServer``).
///
/// It also stops, as at a SIGTERM, once `~/.keiji` or its journal folder is deleted or replaced (``WorkspaceIdentity``,
/// checked every second): no keiji command could reach or stop it any more.
public enum SchedulerDaemon {
    /// How long readiness waits for the bus link's first attempt: a bus that is not running refuses at once,
    /// so this only bounds a bus that is wedged.
    static let busLinkWait: Duration = .seconds(5)

    public static func run(recoveryMode: JournalOptions.RecoveryMode = .strict,
                           readiness: ServiceReadiness.Notifier = ServiceReadiness.Notifier(fd: nil)) async -> Int32 {
        let engine: SchedulerEngine
        let identity: WorkspaceIdentity
        let token: String
        var metricsToken = ""
        var dashboardToken = ""
        let endpoints: BusEndpoints
        var metricsPort: UInt16?
        var dashboardPort: UInt16?
        var metrics: SchedulerMetrics?
        do {
            if let problem = DescriptorLimit.startProblem(service: "keiji-scheduler") { throw KeijiError(.io, problem) }
            let workspace = try Workspace.current()
            let settings = try Settings.load(from: workspace.settingsFile)
            token = try BusToken.loadOrCreate(workspace)  // before the engine starts: a failure here leaves nothing half-started
            endpoints = BusEndpoints.resolve(workspace, settings: settings)
            dashboardPort = settings.dashboardPort
            if dashboardPort != nil { dashboardToken = try TokenFile.loadOrCreate(workspace.dashboardTokenFile, in: workspace.systemRoot) }
            var configuration = SchedulerConfiguration(workspace: workspace, settings: settings)
            configuration.journalOptions.recoveryMode = recoveryMode
            if let port = settings.metricsPort {
                metricsToken = try TokenFile.loadOrCreate(workspace.metricsTokenFile, in: workspace.systemRoot)
                let counting = SchedulerMetrics()
                configuration.metrics = counting
                configuration.journalOptions.observer = { counting.journalCommitted($0) }
                (metricsPort, metrics) = (port, counting)
            }
            // Before the engine starts: without its spawn helper (an install without keiji-spawn-server beside the
            // scheduler) every run would fail, each with its own line in a log nobody reads at `system --start`.
            if let problem = await SpawnServer.shared.launchProblem() { throw KeijiError(.spawn, problem) }
            engine = SchedulerEngine(configuration: configuration)
            let workspaceIdentity = WorkspaceIdentity(workspace)
            let report = try await engine.start()
            // The journal folder's taken once the journal is open, which made it: a later change is someone else's doing.
            identity = workspaceIdentity.watching(workspace.journalDirectory)
            // What `keiji task --list` compares settings.conf's TIME_ZONE with: an edit takes effect at a restart.
            try? SchedulerTimeZone.record(settings.timeZoneIdentifier, workspace: workspace)
            print("keiji-scheduler started (pid \(getpid())); previous shutdown: \(report.previousShutdown.rawValue)")
            fflush(nil)
        } catch {
            StandardError.write("keiji-scheduler: cannot start: \(error)\n")
            readiness.report(.refused("\(error)"))
            return 1
        }
        let endpoint = await serveMetrics(port: metricsPort, metrics: metrics, token: metricsToken, engine: engine, readiness: readiness)
        let dashboard = await serveDashboard(port: dashboardPort, token: dashboardToken, engine: engine, readiness: readiness)
        // The link logs the outcome of every connection attempt; the first line means the first attempt is over.
        let (linkAttempts, linkAttempted) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let link = SchedulerBusLink(endpoint: endpoints.pull, token: token, handler: { request in await engine.handle(request) },
                                    log: { line in
                                        linkAttempted.yield()
                                        Task { await engine.note("bus: \(line)") }
                                    })
        let linkTask = Task { await link.run() }

        let stop = AsyncStream<Int32> { continuation in
            // No SIG_IGN first (the Darwin idiom): on Linux the source installs a handler of its own, and a SIGTERM
            // between the two was discarded (a start interrupted then waited 30 s for the scheduler, then killed it).
            for signal in [SIGTERM, SIGINT] {
                let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
                source.setEventHandler { continuation.yield(signal) }
                source.resume()
                SignalSources.keep(source)
            }
        }
        // After the signal handlers, so a SIGTERM while readiness waits is still a graceful stop.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in linkAttempts { return } }
            group.addTask { try? await Task.sleep(for: busLinkWait) }
            await group.next()
            group.cancelAll()
        }
        linkAttempted.finish()
        // Firing began when start() returned; the view catches up meanwhile, and the CLI reads it.
        await engine.waitForView()
        readiness.report(.ready)

        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if await engine.hasFailed { return true }
                if let change = identity.change() {
                    // On stderr, the log file this process was started with (wherever it is now): a line by path
                    // would make the folder anew, or land in the log of the workspace made there since.
                    StandardError.write("keiji-scheduler: stopping: \(change); no keiji command can reach this scheduler any more\n")
                    return false
                }
            }
            return false
        }
        var failed = false
        let stopTask = Task { for await signal in stop { return signal }; return Int32(0) }
        let outcome = await withTaskGroup(of: Bool.self) { group in
            group.addTask { _ = await stopTask.value; return false }
            group.addTask { await watchdog.value }
            let first = await group.next() ?? false
            group.cancelAll()
            stopTask.cancel()
            watchdog.cancel()
            return first
        }
        failed = outcome
        print("keiji-scheduler: stopping")
        linkTask.cancel()
        await endpoint?.stop()
        await dashboard?.stop()
        await engine.stop()
        return failed ? 70 : 0
    }
}

extension SchedulerDaemon {
    /// Starts `GET /metrics`, or says in one line why it is off (``announce(_:else:engine:readiness:)``): a port
    /// that cannot be bound is not worth a scheduler that does not run.
    static func serveMetrics(port: UInt16?, metrics: SchedulerMetrics?, token: String, engine: SchedulerEngine,
                             readiness: ServiceReadiness.Notifier) async -> MetricsEndpoint? {
        guard let port, let metrics else { return nil }
        let endpoint = MetricsEndpoint(port: port, token: token, metrics: metrics, snapshot: { await engine.metricsSnapshot() })
        let problem = await endpoint.start()
        await announce(problem.map { "metrics: cannot serve on 127.0.0.1:\(port), /metrics is off, scheduling goes on: \($0)" },
                       else: "metrics: serving http://127.0.0.1:\(port)/metrics", engine: engine, readiness: readiness)
        return problem == nil ? endpoint : nil
    }

    /// One line in the scheduler's log, and for whoever started it: on stdout (serving) or stderr (off) when run by
    /// hand, and a problem as a note to `keiji system --start`, which prints it. Not on stderr when stderr is the log
    /// (as `system --start` leaves it): the line would be there twice, once without its time.
    static func announce(_ problem: String?, else serving: String, engine: SchedulerEngine, readiness: ServiceReadiness.Notifier) async {
        let line = problem ?? serving
        if problem == nil {
            print("keiji-scheduler: " + line)
            fflush(nil)
        } else {
            readiness.report(.note(line))
            if !engine.log.isStandardError { StandardError.write("keiji-scheduler: \(line)\n") }
        }
        await engine.note(line)
    }
}

extension SchedulerDaemon {
    /// Starts the web dashboard, or says in one line why it is off, as ``serveMetrics(port:metrics:token:engine:readiness:)`` does.
    static func serveDashboard(port: UInt16?, token: String, engine: SchedulerEngine, readiness: ServiceReadiness.Notifier) async -> DashboardServer? {
        guard let port else { return nil }
        let server = DashboardServer(port: port, token: token, engine: engine)
        let problem = await server.start()
        await announce(problem.map { "dashboard: cannot serve on 127.0.0.1:\(port), the dashboard is off, scheduling goes on: \($0)" },
                       else: "dashboard: serving http://127.0.0.1:\(port)/", engine: engine, readiness: readiness)
        return problem == nil ? server : nil
    }
}

/// Keeps signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
    static func keep(_ source: any DispatchSourceSignal) { sources.append(source) }
}
