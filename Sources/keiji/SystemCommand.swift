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
    @Flag(help: "Stop everything and delete ~/.keiji; with --yes also ~/keiji (your task sources).") var uninstall = false
    @Flag(help: "Only the bus.") var bus = false
    @Flag(help: "Only the scheduler.") var scheduler = false
    @Flag(help: "With --status: print JSON.") var json = false
    @Flag(help: "With --uninstall: delete ~/keiji too, without asking.") var yes = false
    @Option(help: "With --logs: how many lines.") var lines = 100
    @Option(help: "With --start: what the scheduler does if the journal's acknowledged data is damaged: strict (refuse, the default), pointInTime (keep what precedes the damage) or salvage (also keep intact records after it).")
    var recoveryMode: String?

    func run() async throws {
        try await reportingErrors {
            let actions = [start, stop, restart, status, logs, uninstall].filter { $0 }.count
            guard actions == 1 else {
                throw CLIError(actions == 0 ? "say what to do: --start, --stop, --restart, --status, --logs or --uninstall" : "give one action at a time")
            }
            let workspace = try Workspace.current()
            let control = ServiceControl(workspace: workspace)
            var services = ServiceControl.Service.allCases
            if bus != scheduler { services = bus ? [.bus] : [.scheduler] }
            if uninstall { return try runUninstall(workspace: workspace, control: control) }
            let (_, settings) = try loadWorkspace()
            if start || restart {
                if restart { for service in services.reversed() { _ = control.stop(service) } }
                if let recoveryMode, !["strict", "pointInTime", "salvage"].contains(recoveryMode) {
                    throw CLIError("--recovery-mode takes strict, pointInTime or salvage")
                }
                for service in services {
                    let extra = service == .scheduler ? (recoveryMode.map { ["--recovery-mode", $0] } ?? []) : []
                    let (pid, fresh) = try control.start(service, arguments: extra)
                    Console.say(fresh ? "\(service.rawValue): started (pid \(pid))" : "\(service.rawValue): already running (pid \(pid))")
                }
            } else if stop {
                for service in services.reversed() {
                    Console.say(control.stop(service) ? "\(service.rawValue): stopped" : "\(service.rawValue): was not running")
                }
            } else if logs {
                guard bus != scheduler else { throw CLIError("--logs needs --bus or --scheduler") }
                let log = LogFile(service: services[0].rawValue, workspace: workspace, settings: settings)
                for line in try log.lastLines(max(1, lines)) { Console.say(line) }
            } else {
                try printStatus(workspace: workspace, control: control)
            }
        }
    }

    private func runUninstall(workspace: Workspace, control: ServiceControl) throws {
        for service in ServiceControl.Service.allCases.reversed() where control.stop(service) {
            Console.say("\(service.rawValue): stopped")
        }
        var deleteSources = yes
        if !yes, FileSystem.exists(workspace.root) {
            guard isatty(STDIN_FILENO) != 0 else {
                try FileSystem.remove(workspace.systemRoot)
                Console.say("deleted \(workspace.systemRoot)")
                throw CLIError("kept your task sources in \(workspace.root): pass --yes to delete them too")
            }
            print("delete your task sources in \(workspace.root) too? [y/N] ", terminator: "")
            fflush(nil)
            deleteSources = readLine()?.lowercased().hasPrefix("y") == true
        }
        try FileSystem.remove(workspace.systemRoot)
        Console.say("deleted \(workspace.systemRoot)")
        if deleteSources {
            try FileSystem.remove(workspace.root)
            Console.say("deleted \(workspace.root)")
        } else if FileSystem.exists(workspace.root) {
            Console.say("kept \(workspace.root)")
        }
    }

    private func printStatus(workspace: Workspace, control: ServiceControl) throws {
        let report = try? JSONDecoder().decode(RecoveryReport.self, from: Data(contentsOf: URL(fileURLWithPath: workspace.recoveryReportFile)))
        let services = ServiceControl.Service.allCases.map { ($0.rawValue, control.runningPID($0)) }
        var tasks: [[String?]] = []
        if FileSystem.exists(workspace.databaseFile) {
            let db = try SQLiteDatabase(path: workspace.databaseFile, readOnly: true)
            tasks = try db.rows("""
                SELECT t.Name, t.IsDisabled, t.IsError, t.IsRunning, t.NextExecutionTime,
                       (SELECT Outcome || COALESCE(' (exit ' || ExitCode || ')', '') FROM runs r WHERE r.TaskName = t.Name ORDER BY EndTime DESC LIMIT 1)
                FROM task_models t ORDER BY t.Name
                """)
        }
        if json {
            var object: [String: Any] = ["services": Dictionary(uniqueKeysWithValues: services.map { ($0.0, ["status": $0.1 == nil ? "OFFLINE" : "ONLINE", "pid": $0.1.map(Int.init) as Any]) })]
            if let report, let data = try? JSONEncoder().encode(report) { object["recovery"] = try JSONSerialization.jsonObject(with: data) }
            object["tasks"] = tasks.map { ["name": $0[0] ?? "", "disabled": $0[1] == "1", "error": $0[2] == "1", "running": $0[3] == "1",
                                           "next": $0[4] ?? NSNull(), "last": $0[5] ?? NSNull()] as [String: Any] }
            Console.say(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            return
        }
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, 18 - s.count)) }
        Console.say("======== SERVICES ========")
        Console.say(pad("NAME") + " " + pad("STATUS"))
        for (name, pid) in services { Console.say(pad(name) + " " + pad(pid == nil ? "OFFLINE" : "ONLINE") + (pid.map { " pid \($0)" } ?? "")) }
        Console.say("======== SERVICES ========")
        Console.say("")
        Console.say("======== LAST RECOVERY ========")
        if let report {
            for line in RecoveryReportText.lines(report) { Console.say(line) }
        } else {
            Console.say("the scheduler has not started yet")
        }
        Console.say("")
        Console.say("======== TASKS ========")
        if tasks.isEmpty { Console.say("no tasks") }
        for row in tasks {
            let state = row[2] == "1" ? "ERROR" : row[1] == "1" ? "disabled" : row[3] == "1" ? "running" : "scheduled"
            Console.say("\(pad(row[0] ?? "?")) \(pad(state)) next \(row[4] ?? "-")   last \(row[5] ?? "never run")")
        }
    }
}

/// The recovery report as lines for people.
enum RecoveryReportText {
    static func lines(_ r: RecoveryReport) -> [String] {
        var out = ["started:      \(ISO8601.string(fromMilliseconds: r.startedAt)) after a \(r.previousShutdown == .crash ? "CRASH" : r.previousShutdown == .clean ? "clean shutdown" : "first start")",
                   "replayed:     \(r.journal.recordsReplayed) records in \(String(format: "%.3f", r.journal.replaySeconds)) s (checkpoint at LSN \(r.journal.checkpointLSN.map(String.init) ?? "none"), journal ends at \(r.journal.lastLSN))",
                   "repaired:     \(r.journal.bytesRepaired) bytes" + (r.journal.repairs.isEmpty ? "" : ": " + r.journal.repairs.joined(separator: "; "))]
        out.append("interrupted:  " + (r.interruptedRuns.isEmpty ? "none" : "\(r.interruptedRuns.count) run(s)"))
        for run in r.interruptedRuns {
            out.append("  \(run.task) run \(run.runID) started \(ISO8601.string(fromMilliseconds: run.startedAt)): \(run.action)")
        }
        out.append("missed slots: " + (r.missedSlots.isEmpty ? "none" : "\(r.missedSlots.reduce(0) { $0 + $1.count }) in \(r.missedSlots.count) task(s)"))
        for missed in r.missedSlots {
            out.append("  \(missed.task): \(missed.count) slot(s) \(ISO8601.string(fromSeconds: missed.firstSlot))…\(ISO8601.string(fromSeconds: missed.lastSlot)), policy \(missed.policy.rawValue), \(missed.runs) run(s) started")
        }
        out.append("re-applied:   \(r.commandsReapplied) command(s) to the query view" + (r.viewRebuilt ? " (view rebuilt)" : ""))
        out.append("took:         \(String(format: "%.3f", r.durationSeconds)) s")
        return out
    }
}
