import ArgumentParser
import Foundation
import KeijiCore

/// `keiji task …`: the seed's flags (`--create`, `--get`, `--logs`, `--disable`, `--enable`, `--delete`,
/// `--resolve`), plus command tasks (`--command` with `--every`, `--cron` or `--on/--at`) and `--run`.
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Create and manage tasks.")

    @Option(help: "The task's name (letters, digits, '_' and '-').") var name: String?
    @Option(help: "A description, with --create.") var desc: String?

    @Flag(help: "Create the task: Swift sources in ~/keiji/tasks/<name> (or, with --command, a command task saved at once).") var create = false
    @Flag(help: "With --create: replace an existing task folder.") var force = false
    @Flag(help: "Build the task with swift build, read its schedule, install it and save it.") var build = false
    @Flag(help: "With --build: apply the new build to the running scheduler now (stops a run in progress).") var restart = false
    @Flag(help: "Print the task (all tasks without --name).") var get = false
    @Flag(help: "Print the last lines of the task's log.") var logs = false
    @Flag(help: "Stop scheduling the task.") var disable = false
    @Flag(help: "Schedule the task again.") var enable = false
    @Flag(help: "Delete the task: definition, logs and binary (the source folder is kept unless --remove-source).") var delete = false
    @Flag(help: "Clear the task's error so it runs again.") var resolve = false
    @Flag(help: "Run the task now, outside its schedule.") var run = false
    @Flag(help: "Stop the task's current run (the schedule goes on).") var stop = false

    @Option(help: "With --create: the shell command the task runs.") var command: String?
    @Option(help: "Interval: 10s, 5m, 2h.") var every: String?
    @Option(help: "Cron expression (5 fields, or 6 with seconds first).") var cron: String?
    @Option(help: "Day(s) for --at, e.g. friday or mon,wed,fri.") var on: String?
    @Option(help: "Time with --on: 10:00PM or 22:00.") var at: String?
    @OptionGroup(title: "Run policies (with --create --command, or --build; a rebuild keeps those not given)") var policyOptions: RunPolicyOptions

    @Flag(help: "With --get: print JSON.") var json = false
    @Option(help: "With --logs: how many lines.") var lines = 100
    @Flag(help: "With --logs: keep printing new lines.") var follow = false
    @Flag(help: "With --delete: also remove ~/keiji/tasks/<name>.") var removeSource = false

    func run() async throws {
        try await reportingErrors {
            let (workspace, settings) = try loadWorkspace()
            let actions = [create, build, get, logs, disable, enable, delete, resolve, run, stop].filter { $0 }.count
            guard actions == 1 else {
                throw CLIError(actions == 0 ? "say what to do: --create, --build, --get, --logs, --disable, --enable, --delete, --resolve, --run or --stop"
                                            : "give one action at a time")
            }
            if get { return try printTasks(workspace: workspace, settings: settings) }
            guard let raw = name else { throw CLIError("--name is required") }
            let taskName = try TaskName(raw)
            let sender = CommandSender(workspace: workspace, settings: settings)
            if create { return try await createTask(taskName, workspace: workspace, settings: settings, sender: sender) }
            if logs { return try await printLogs(taskName, workspace: workspace, settings: settings) }
            if build { return try await buildTask(taskName, workspace: workspace, sender: sender) }
            let (event, verb): (JournalEntry.Event, String) =
                disable ? (.taskDisabled(taskName), "disabled") :
                enable ? (.taskEnabled(taskName), "enabled") :
                delete ? (.taskDeleted(taskName), "deleted") :
                resolve ? (.taskResolved(taskName), "resolved") :
                run ? (.taskTriggered(taskName), "triggered") : (.taskStopRequested(taskName), "stopped")
            let delivery = try await sender.send(event)
            if delete {
                try LogFile(task: taskName, workspace: workspace, settings: settings).removeAll()
                try FileSystem.remove(workspace.executable(for: taskName))
                if removeSource {
                    try FileSystem.remove(workspace.taskDirectory(taskName))
                    if FileSystem.exists(workspace.root + "/Package.swift") { try WorkspaceTemplates.refreshTaskList(workspace) }
                }
            }
            Console.say("task \(taskName) \(verb) (\(delivery.description))")
            if delete { Console.say(removeSource ? "removed its logs, binary and source folder" : "removed its logs and binary; source kept in \(workspace.taskDirectory(taskName))") }
        }
    }

    private func createTask(_ taskName: TaskName, workspace: Workspace, settings: Settings, sender: CommandSender) async throws {
        guard let desc, !desc.isEmpty else { throw CLIError("--desc is required with --create") }
        let directory = workspace.taskDirectory(taskName)
        if FileSystem.exists(directory) && !force {
            throw CLIError("task \(taskName) already exists in \(directory); use --force to recreate it")
        }
        func quoted(_ value: String) -> String { "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let environment = Data("TASK_NAME=\(quoted(taskName.rawValue))\nTASK_DESCRIPTION=\(quoted(desc))\n".utf8)
        guard let command, !command.isEmpty else {
            // A Swift task: the seed's three files, built later with --build.
            guard every == nil, cron == nil, on == nil, at == nil else {
                throw CLIError("a Swift task's schedule lives in its schedule.swift; --every/--cron/--on go with --command")
            }
            guard policyOptions.isEmpty else {
                throw CLIError("a Swift task's policies are set when it is built: give them to `keiji task --name=\(taskName) --build`")
            }
            try WorkspaceTemplates.installWorkspace(workspace)
            if force { try FileSystem.remove(directory) }
            try FileSystem.createDirectory(directory, mode: 0o755)
            try FileSystem.writeAtomically(environment, to: directory + "/.env", mode: 0o600)
            try FileSystem.writeAtomically(Data(WorkspaceTemplates.function(description: desc).utf8), to: directory + "/function.swift", mode: 0o644)
            try FileSystem.writeAtomically(Data(WorkspaceTemplates.schedule.utf8), to: directory + "/schedule.swift", mode: 0o644)
            try FileSystem.writeAtomically(Data(WorkspaceTemplates.main.utf8), to: directory + "/main.swift", mode: 0o644)
            try WorkspaceTemplates.refreshTaskList(workspace)
            Console.say("created task \(taskName) in \(directory): function.swift, schedule.swift, main.swift, .env")
            Console.say("next: edit them, then `keiji task --name=\(taskName) --build`")
            return
        }
        // A new definition: the flags over the defaults (a name reused with --force starts afresh).
        let (spec, policy) = try RunPolicyOverride.resolve(schedule: try scheduleFromFlags(), previous: nil, sdk: RunPolicyOverride(),
                                                           cli: try policyOptions.override())
        if force { try FileSystem.remove(directory) }
        try FileSystem.createDirectory(directory, mode: 0o755)
        // Values are single-quoted with quotes escaped: the file is data, never evaluated by a shell.
        try FileSystem.writeAtomically(environment, to: directory + "/.env", mode: 0o600)
        let definition = TaskDefinition(name: taskName, description: desc, action: .command(command), schedule: spec,
                                        policy: policy, directory: directory)
        let delivery = try await sender.send(.taskSaved(definition, taskID: UUID().uuidString.lowercased()))
        Console.say("created task \(taskName) in \(directory)")
        Console.say("schedule: \(spec.schedule.displayString)\(spec.timeZone.map { " (\($0))" } ?? "") — saved (\(delivery.description))")
    }

    private func buildTask(_ taskName: TaskName, workspace: Workspace, sender: CommandSender) async throws {
        let description = (try? DotEnvFile.value("TASK_DESCRIPTION", in: workspace.taskDirectory(taskName) + "/.env")) ?? ""
        // CLI flag > the program's own policies > the previous definition > the defaults.
        let previous = try TaskPolicyColumns.load(taskName, workspace: workspace).map { ($0.spec, $0.policy) }
        // Flags out of range fail now, not after a build.
        _ = try RunPolicyOverride.resolve(schedule: .every(1, .hours), previous: previous, sdk: RunPolicyOverride(), cli: try policyOptions.override())
        let definition = try TaskBuilder(workspace: workspace).build(taskName, description: description, previous: previous,
                                                                     cli: try policyOptions.override())
        let delivery = try await sender.send(.taskSaved(definition, taskID: UUID().uuidString.lowercased()))
        Console.say("task \(taskName) saved: \(definition.schedule.schedule.displayString) (\(delivery.description))")
        if restart {
            if delivery.viaScheduler {
                let stopped = try await sender.send(.taskStopRequested(taskName))
                Console.say("restarting task \(taskName): the new build runs from its next slot (\(stopped.description))")
            } else {
                Console.say("the scheduler is not running: the new build is used when it starts")
            }
        }
    }

    private func scheduleFromFlags() throws -> Schedule {
        let given = [every != nil, cron != nil, on != nil || at != nil].filter { $0 }.count
        guard given == 1 else { throw CLIError("give one schedule: --every 10s, --cron \"*/5 * * * *\", or --on friday --at 10:00PM") }
        if let every { return try Self.parseInterval(every) }
        if let cron { return .cron(try CronExpression(cron)) }
        guard let on, let at else { throw CLIError("--on and --at go together, e.g. --on friday --at 10:00PM") }
        let days = try on.split(separator: ",").map { try Weekday(parsing: String($0)) }
        return .weekly(days: days, at: try TimeOfDay(parsing: at))
    }

    static func parseInterval(_ text: String) throws -> Schedule {
        let units: [(String, Schedule.Unit)] = [("s", .seconds), ("m", .minutes), ("h", .hours)]
        for (suffix, unit) in units where text.hasSuffix(suffix) {
            if let n = Int(text.dropLast()), n > 0 { return .every(n, unit) }
        }
        throw CLIError("invalid interval \"\(text)\": use a positive number with s, m or h, e.g. 10s, 5m, 2h")
    }

    private func printLogs(_ taskName: TaskName, workspace: Workspace, settings: Settings) async throws {
        let log = LogFile(task: taskName, workspace: workspace, settings: settings)
        guard FileSystem.exists(log.activePath) || FileSystem.exists(log.directory) else {
            throw CLIError("no log for task \(taskName) yet (\(log.activePath))")
        }
        for line in try log.lastLines(max(1, lines)) { Console.say(line) }
        guard follow else { return }
        var offset = (try? FileManager.default.attributesOfItem(atPath: log.activePath)[.size] as? Int) ?? 0
        while true {
            try await Task.sleep(for: .milliseconds(300))
            guard let handle = FileHandle(forReadingAtPath: log.activePath) else { continue }
            let size = Int(handle.seekToEndOfFile())
            if size < offset { offset = 0 }  // rotated
            if size > offset {
                handle.seek(toFileOffset: UInt64(offset))
                FileHandle.standardOutput.write(handle.readDataToEndOfFile())
                offset = size
            }
            handle.closeFile()
        }
    }
}
