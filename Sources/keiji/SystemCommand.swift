import ArgumentParser
import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji system …`: start, stop and inspect the services, with the recovery report of the scheduler's last
/// start in `--status`.
struct SystemCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system", abstract: "Manage keiji's services (bus, scheduler).",
        discussion: """
            Where keiji-bus listens is set in ~/keiji/settings.conf: BUS_TRANSPORT=unix (the default: sockets in \
            ~/.keiji, one bus per user) or BUS_TRANSPORT=tcp (127.0.0.1, BUS_PUSH_PORT for commands, default 8005, \
            and BUS_PULL_PORT for the scheduler, default 8006). KEIJI_BUS_PUSH_PORT and KEIJI_BUS_PULL_PORT in the \
            environment override the ports and imply tcp. Every connection is authenticated both ways with \
            ~/.keiji/bus.token, which never crosses the wire.
            """)

    @Flag(help: "Start the services (or the one named by --bus/--scheduler).") var start = false
    @Flag(help: "Stop the services; every one is stopped even if another is already dead.") var stop = false
    @Flag(help: "Stop, then start (starts what was stopped).") var restart = false
    @Flag(help: "Show services, the last recovery report and tasks.") var status = false
    @Flag(help: "Print the last lines of a service log (needs --bus or --scheduler).") var logs = false
    @Flag(help: "Stop the services and delete ~/.keiji (the journal) and ~/keiji (your task sources); asks about each, or --yes.") var uninstall = false
    @Flag(help: "Only the bus.") var bus = false
    @Flag(help: "Only the scheduler.") var scheduler = false
    @Flag(help: "With --status: print JSON.") var json = false
    @Flag(help: "With --uninstall: delete both folders without asking (needed without a terminal).") var yes = false
    // Optional, so that one given to another action is seen (`--lines 100` is the default's value).
    @Option(parsing: .unconditional, help: "With --logs: how many lines (1–100000, default 100).") var lines: Int?
    @Option(parsing: .unconditional, help: "With --start or --restart: what the scheduler does if the journal's acknowledged data is damaged: strict (refuse, the default), pointInTime (keep what precedes the damage) or salvage (also keep intact records after it).")
    var recoveryMode: String?

    /// The action flags, in the help's order.
    private var actionFlags: [(flag: String, chosen: Bool)] {
        [("--start", start), ("--stop", stop), ("--restart", restart), ("--status", status), ("--logs", logs), ("--uninstall", uninstall)]
    }

    /// The options given, each with the actions that take it, as `keiji task`'s table (`TaskCommand.givenOptions`).
    private var givenOptions: [(option: String, actions: [String])] {
        let options: [(String, Bool, [String])] = [
            ("--bus", bus, ["--start", "--stop", "--restart", "--logs"]), ("--scheduler", scheduler, ["--start", "--stop", "--restart", "--logs"]),
            ("--json", json, ["--status"]), ("--yes", yes, ["--uninstall"]), ("--lines", lines != nil, ["--logs"]),
            ("--recovery-mode", recoveryMode != nil, ["--start", "--restart"]),
        ]
        return options.filter { $0.1 }.map { ($0.0, $0.2) }
    }

    /// No action, two, or an option the action does not take is a usage error (exit 64): such an option was
    /// ignored (`--status --recovery-mode salvage` showed the status, `--start --yes` started).
    func validate() throws {
        let chosen = actionFlags.filter(\.chosen)
        guard chosen.count == 1, let action = chosen.first?.flag else {
            throw ValidationError(chosen.isEmpty ? "say what to do: --start, --stop, --restart, --status, --logs or --uninstall"
                                                 : "give one action at a time")
        }
        if let misfit = OptionTable.misfit(givenOptions, action: action) { throw misfit }
        if recoveryMode != nil, bus, !scheduler {
            throw ValidationError("--recovery-mode is the scheduler's: not with --bus alone")
        }
        if let recoveryMode, !["strict", "pointInTime", "salvage"].contains(recoveryMode) {
            throw ValidationError("--recovery-mode takes strict, pointInTime or salvage (got \(recoveryMode))")
        }
        if logs {
            guard !(bus && scheduler) else { throw ValidationError("--bus and --scheduler are exclusive with --logs: name one service") }
            guard bus || scheduler else { throw ValidationError("--logs needs --bus or --scheduler") }
            do { try lines.map(CountOption.lines.check) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() async throws {
        try await reportingErrors {
            let workspace = try Workspace.current()
            let control = ServiceControl(workspace: workspace)
            var services = ServiceControl.Service.allCases
            if bus != scheduler { services = bus ? [.bus] : [.scheduler] }
            // Only starting needs valid settings: stop, status, logs and uninstall need the paths alone, so a
            // bad settings.conf never keeps running services from being stopped.
            if uninstall { return try runUninstall(workspace: workspace, control: control) }
            if stop {
                if services.contains(.scheduler), let run = try DetachedSystemCommand.askingRun(control) {
                    return try DetachedSystemCommand.handOff(run: run, workspace: workspace)
                }
                var killed: [String] = []
                for service in services.reversed() {
                    switch try control.stopping(service) {
                    case .notRunning: Console.say("\(service.rawValue): was not running")
                    case .stopped: Console.say("\(service.rawValue): stopped")
                    case .killed:
                        Console.say("\(service.rawValue): killed")
                        killed.append(service.binary)
                    }
                }
                if !killed.isEmpty {
                    throw CLIError("\(killed.joined(separator: " and ")) did not stop in time and had to be killed (SIGKILL)")
                }
            } else if logs {
                let log = LogFile(directory: workspace.serviceLogDirectory(services[0].rawValue), baseName: services[0].rawValue, rotate: false, maxSize: 1)
                Console.say(byteLines: try log.lastLineBytes(lines ?? 100))
            } else if status {
                try await printStatus(workspace: workspace, control: control)
            } else {
                // Checked before a restart stops anything: bad settings must not leave the services down.
                let (_, settings) = try loadWorkspace()
                warnIfPasswordReadable(settings, in: workspace.settingsFile)
                // A mode applies when the scheduler starts: one already running would ignore it, and say "already running".
                if let recoveryMode, start, services.contains(.scheduler), let pid = try control.runningPID(.scheduler) {
                    throw CLIError("the scheduler is already running (pid \(pid)); --recovery-mode applies when it starts: "
                                   + "keiji system --restart --recovery-mode \(recoveryMode)")
                }
                // A database the scheduler could not use (DB_URL) is refused before any service starts, so a
                // failed start leaves nothing running and nothing created in it.
                if services.contains(.scheduler), try restart || control.runningPID(.scheduler) == nil {
                    try ViewLocation(settings: settings, workspace: workspace).checkAccess()
                    SharedPostgresSession.current?.close()  // the services' starts and readiness waits need none
                }
                if restart, services.contains(.scheduler), let run = try DetachedSystemCommand.askingRun(control) {
                    return try DetachedSystemCommand.handOff(run: run, workspace: workspace)
                }
                // From its stop to its start a restart holds back interrupts: else one left the services down. A start
                // holds them too, and on one stops again what it started: else one left the bus without the scheduler.
                let interrupts = HeldInterrupts.hold()
                defer { interrupts.release() }
                if restart {
                    // Until it has stopped something a restart can still end with the services untouched: an interrupt
                    // while it waits for another call's services lock ends it at once. From its first stop it finishes.
                    var stoppedAny = false
                    for service in services.reversed() {
                        let doing = service == .scheduler ? "stopping the scheduler, whose runs in progress get their grace time" : "stopping the \(service.rawValue)"
                        if stoppedAny { interrupts.now(doing) } else { interrupts.sayNothing() }
                        do {
                            if try control.stop(service, unless: { !stoppedAny && HeldInterrupts.interrupted }, onceLocked: { interrupts.now(doing) }) {
                                stoppedAny = true
                                Console.say("\(service.rawValue): stopped")
                            }
                        } catch is WorkspaceChangeLock.Interrupted {
                            throw CLIError("interrupted: nothing was stopped or started; the services are as they were before this restart")
                        }
                    }
                }
                var startedNow: [ServiceControl.Service] = []
                var restartFailure: (any Error)?
                let wait = ReadinessWait(interrupted: restart ? { false } : { HeldInterrupts.interrupted })
                for service in services {
                    if restart { interrupts.now("starting the \(service.rawValue)") }
                    let extra = service == .scheduler ? (recoveryMode.map { ["--recovery-mode", $0] } ?? []) : []
                    do {
                        let (pid, fresh, notes) = try control.start(service, arguments: extra, wait: wait)
                        if fresh { startedNow.append(service) }
                        Console.say(fresh ? "\(service.rawValue): started (pid \(pid))" : "\(service.rawValue): already running (pid \(pid))")
                        for note in notes { Console.progress("warning: \(service.rawValue): \(note)") }
                    } catch let interrupted as ServiceControl.Interrupted {
                        try stopAfterInterrupt(interrupted.spawned ? startedNow + [service] : startedNow, control: control, interrupts: interrupts)
                    } catch where restart {
                        // The services ran before: one that cannot start again leaves the others running (a bus whose
                        // port was taken meanwhile left the scheduler down too, and no task ran), and fails the call.
                        restartFailure = restartFailure ?? error
                    } catch {
                        // A service that refused or died leaves the ones this start brought up for it stopped again, so
                        // a failed start leaves nothing running; one still starting (not ready in time) keeps them.
                        if (try? control.runningPID(service)) == nil {
                            for earlier in startedNow.reversed() where (try? control.stop(earlier)) == true {
                                Console.say("\(earlier.rawValue): stopped (\(service.binary) did not start)")
                            }
                        }
                        throw error
                    }
                }
                if let restartFailure { throw restartFailure }
            }
        }
    }

    /// An interrupted start (Ctrl-C, a closed terminal) stops the services it had started, the one still starting too,
    /// and so leaves them as they were: ended there, it left the bus running without the scheduler. Its error line says
    /// so, and the held signal then ends the call (``Console/end(_:)``).
    private func stopAfterInterrupt(_ started: [ServiceControl.Service], control: ServiceControl, interrupts: HeldInterrupts) throws -> Never {
        interrupts.say("the start stops what it started first, or one service would run without the other")
        var stopped: [String] = []
        for service in started.reversed() where try control.stop(service) {
            Console.say("\(service.rawValue): stopped (the start was interrupted)")
            stopped.append(service.binary)
        }
        throw CLIError("interrupted: " + (stopped.isEmpty ? "nothing was started" : "stopped \(stopped.joined(separator: " and ")) again")
                       + "; the services are as they were before this start")
    }

    /// Asks about both folders (or takes `--yes`) before anything is stopped or deleted; without a terminal
    /// and without `--yes` it refuses having touched nothing. Services are stopped before their files go.
    private func runUninstall(workspace: Workspace, control: ServiceControl) throws {
        let folders = [(workspace.systemRoot, "the journal, logs and built tasks"), (workspace.root, "your task sources and settings")]
        let running = try ServiceControl.Service.allCases.filter { try control.runningPID($0) != nil }
        guard !running.isEmpty || folders.contains(where: { FileSystem.exists($0.0) }) else {
            for (folder, _) in folders { Console.say("\(folder): nothing to remove") }
            return
        }
        var chosen: [String] = []
        if yes {
            chosen = folders.map(\.0)
        } else {
            guard isatty(STDIN_FILENO) != 0 else {
                throw CLIError("--uninstall deletes \(workspace.systemRoot) and \(workspace.root) and cannot ask here: pass --yes to confirm (nothing was deleted)")
            }
            for (folder, what) in folders where FileSystem.exists(folder) {
                let target = Self.linkTarget(folder)
                Console.ask(target.map { "remove the link \(folder) (→ \($0); its target is kept)? [y/N] " } ?? "delete \(folder) (\(what))? [y/N] ")
                // Ctrl-D is no answer: it asked the next question on the prompt's line, and the shell's prompt followed
                // on it too after `nothing deleted` and status 0.
                guard let answer = readLine() else {
                    Console.say("")
                    throw CLIError("no answer (end of input): nothing was deleted")
                }
                if answer.lowercased().hasPrefix("y") { chosen.append(folder) }
            }
            guard !chosen.isEmpty else {
                Console.say("nothing deleted")
                return
            }
        }
        for service in ServiceControl.Service.allCases.reversed() where try control.stop(service) {
            Console.say("\(service.rawValue): stopped")
        }
        if let alive = try ServiceControl.Service.allCases.first(where: { try control.runningPID($0) != nil }) {
            throw CLIError("\(alive.binary) is still running; nothing was deleted")
        }
        for (folder, _) in folders {
            if !FileSystem.exists(folder) {
                Console.say("\(folder): nothing to remove")
            } else if chosen.contains(folder) {
                // A link is removed, not what it points to: said so, or "deleted" claimed the sources were gone.
                let target = Self.linkTarget(folder)
                try FileSystem.remove(folder)
                Console.say(target.map { "removed the link \(folder) (→ \($0)); its target was kept" } ?? "deleted \(folder)")
            } else {
                Console.say("kept \(folder)")
            }
        }
    }

    /// Where `path` points when it is a symbolic link.
    private static func linkTarget(_ path: String) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: path)
    }

    /// A password in `DB_URL` is a secret: said at each start while others can read the file (a settings.conf from
    /// before `keiji init` made it 0600, or one copied in).
    private func warnIfPasswordReadable(_ settings: Settings, in file: String) {
        guard case .postgres(let url) = settings.database, !Settings.Database.passwords(in: url).isEmpty else { return }
        var info = stat()
        guard stat(file, &info) == 0, info.st_mode & 0o044 != 0 else { return }
        Console.progress("warning: \(file) holds DB_URL's password and others can read it (mode \(String(info.st_mode & 0o777, radix: 8))): "
                         + "chmod 600 \(file)")
    }

    private static func padded(_ s: String) -> String { s + String(repeating: " ", count: max(0, 18 - s.count)) }

    /// The SERVICES block of `--status`: each service's status and pid, why the scheduler stopped when its log says,
    /// and where the query view is.
    private func printServices(_ services: [(String, pid_t?)], stop schedulerStop: String?, view: ViewLocation) {
        Console.say("======== SERVICES ========")
        Console.say(Self.padded("NAME") + " " + Self.padded("STATUS"))
        for (name, pid) in services {
            let why = name == ServiceControl.Service.scheduler.rawValue ? schedulerStop.map { " " + $0 + " (fix that, then keiji system --start)" } : nil
            Console.say(Self.padded(name) + " " + Self.padded(pid == nil ? "OFFLINE" : "ONLINE") + (pid.map { " pid \($0)" } ?? why ?? ""))
        }
        Console.say("======== SERVICES ========")
        Console.say("query view: \(view)")
        Console.say("")
    }

    private func printStatus(workspace: Workspace, control: ServiceControl) async throws {
        let report = try? JSONDecoder().decode(RecoveryReport.self, from: Data(contentsOf: URL(fileURLWithPath: workspace.recoveryReportFile)))
        let services = try ServiceControl.Service.allCases.map { ($0.rawValue, try control.runningPID($0)) }
        // A scheduler down because its journal failed (a full disk) says so in its log's last line: why it is OFFLINE.
        let schedulerStop = services.contains { $0.0 == ServiceControl.Service.scheduler.rawValue && $0.1 == nil }
            ? JournalFailureStop.lastStop(in: (try? LogFile(directory: workspace.serviceLogDirectory("scheduler"), baseName: "scheduler",
                                                            rotate: false, maxSize: 1).lastLines(20)) ?? [])
            : nil
        // Status works whatever the settings say; it only warns about what would stop the next start. Bad
        // settings leave the view where the default puts it.
        var settings = Settings()
        var settingsProblem: String?
        do { settings = try loadWorkspace().1 } catch { settingsProblem = "\(error)" }
        if settingsProblem == nil, let warning = SchedulerTimeZone.mismatchWarning(settings, workspace: workspace) { Console.progress(warning) }
        let view = ViewLocation(settings: settings, workspace: workspace)
        let runsEnded = CrashedRuns.viewMayShowThem(view, workspace: workspace)
        var tasks: [[String?]] = []
        var nodes: [ClusterNode]?
        do {
            // A missing view read as empty would say "no tasks" of tasks the journal has, as `keiji task` did.
            if settingsProblem == nil { try await ViewRepair.restoreIfMissing(workspace: workspace, settings: settings) }
            let database = try view.openForReading()
            // Name, IsDisabled, IsError, IsRunning, NextExecutionTime, the last run's result worded as `task --list` words
            // it (`killed (signal 9)`, not `failed`), its node.
            tasks = try database?.tasksWithLatestRun(["Name", "IsDisabled", "IsError", "IsRunning", "NextExecutionTime"],
                                                     runColumns: ["Outcome", "ExitCode", "Signal", "Message", "Node"])
                .map { row in
                    let result = row[5].map { RunResultText.text(outcome: $0, exitCode: row[6], signal: row[7], message: row[8]) }
                    return Array(row.prefix(5)) + [result, row[9]]
                } ?? []
            // On PostgreSQL every scheduler of the database is a node of one cluster.
            if let postgres = database as? PostgresViewDatabase { nodes = try ClusterDatabase.nodes(on: postgres.connection) }
        } catch {
            // Failed as `task --list` fails (`reportingErrors`: a damaged view set aside and rebuilt, or what to do
            // said; an unreachable PostgreSQL one in one line; exit 1): kept as a warning, it said `"tasks": []`, exit 0,
            // of a journal full of them. The services are said first: whether the scheduler runs is what an operator
            // looks for then.
            if !json { printServices(services, stop: schedulerStop, view: view) }
            throw error
        }
        if json {
            var object: [String: Any] = ["services": Dictionary(uniqueKeysWithValues: services.map { service in
                var entry: [String: Any] = ["status": service.1 == nil ? "OFFLINE" : "ONLINE", "pid": service.1.map(Int.init) as Any]
                if service.0 == ServiceControl.Service.scheduler.rawValue, let schedulerStop { entry["stopped"] = schedulerStop }
                return (service.0, entry)
            })]
            if let report { object["recovery"] = try RecoveryReportJSON.object(report) }
            object["view"] = ["database": view.engine, "location": view.address]
            if let lag = ViewLag.current(workspace) {
                object["viewBehind"] = ["since": ISO8601.string(fromMilliseconds: lag.sinceMilliseconds), "reason": lag.reason]
            }
            if let settingsProblem { object["warning"] = settingsProblem }
            object["tasks"] = tasks.map { ["name": $0[0] ?? "", "disabled": $0[1] == "1", "error": $0[2] == "1",
                                           "running": $0[3] == "1" && !runsEnded, "interrupted": $0[3] == "1" && runsEnded,
                                           "next": $0[4] ?? NSNull(), "last": $0[5] ?? NSNull(), "lastNode": $0[6] ?? NSNull()] as [String: Any] }
            if let nodes {
                object["nodes"] = nodes.map { ["name": $0.name, "host": $0.host, "pid": Int($0.pid), "alive": $0.isAlive, "stopped": $0.stopped,
                                               "heartbeatAgeSeconds": $0.heartbeatAgeSeconds, "claimsLastMinute": $0.claimsLastMinute] as [String: Any] }
            }
            return try Console.say(json: object)
        }
        func pad(_ s: String) -> String { Self.padded(s) }
        // On stderr, as every other warning: on stdout a `--status | grep` took them for the status.
        if let settingsProblem { Console.progress("warning: \(settingsProblem) (keiji system --start refuses until it is fixed)") }
        if let warning = ViewLag.warning(workspace) { Console.progress(warning) }
        printServices(services, stop: schedulerStop, view: view)
        if let nodes {
            Console.say("======== CLUSTER NODES ========")
            if nodes.isEmpty { Console.say("no node has started on this database yet") }
            var table = TextColumns(["NODE", "STATE", "HEARTBEAT", "CLAIMS/MIN", "HOST", "PID"])
            for node in nodes {
                table.rows.append([node.name, node.isAlive ? "alive" : node.stopped ? "stopped" : "LOST", String(format: "%.1f s ago", node.heartbeatAgeSeconds),
                                   String(node.claimsLastMinute), node.host, String(node.pid)])
            }
            if !nodes.isEmpty { Console.say(lines: table.lines()) }
            Console.say("")
        }
        Console.say("======== LAST RECOVERY ========")
        if let report {
            Console.say(lines: RecoveryReportText.lines(report))
        } else if let pid = services.first(where: { $0.0 == ServiceControl.Service.scheduler.rawValue })?.1 {
            // It runs, so it started: its report file is what is missing (deleted, or not JSON).
            Console.say("no report: \(workspace.recoveryReportFile) is missing or unreadable (the scheduler, pid \(pid), writes it at each start)")
        } else {
            Console.say("the scheduler has not started yet")
        }
        Console.say("")
        Console.say("======== TASKS ========")
        if tasks.isEmpty { Console.say("no tasks") }
        Console.say(lines: tasks.map { row in
            let state = row[2] == "1" ? "ERROR" : row[1] == "1" ? "disabled" : row[3] == "1" ? (runsEnded ? "interrupted" : "running") : "scheduled"
            return "\(pad(row[0] ?? "?")) \(pad(state)) next \(row[4] ?? "-")   last \(row[5] ?? "never run")"
                + (nodes != nil && row[5] != nil ? " on \(row[6] ?? "?")" : "")
        })
    }
}

/// The recovery report as lines for people: each entry's label padded to one column, its details indented below it.
enum RecoveryReportText {
    static func lines(_ report: RecoveryReport) -> [String] {
        report.entries(instant: ISO8601.string(fromMilliseconds:), slot: ISO8601.string(fromSeconds:)).flatMap { entry in
            ["\(entry.label):".padding(toLength: 14, withPad: " ", startingAt: 0) + entry.value] + entry.details.map { "  " + $0 }
        }
    }
}
