import ArgumentParser
import Foundation
import KeijiCore

/// `keiji task …`: the seed's flags (`--create`, `--get`, `--logs`, `--disable`, `--enable`, `--delete`,
/// `--resolve`), plus command tasks (`--command` with `--every`, `--cron` or `--on/--at`), `--run`, and the
/// views `--list` (every task's next and last run) and `--runs` (one task's run history).
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Create and manage tasks.")

    @Option(parsing: .unconditional, help: "The task's name: 1-64 ASCII letters, digits, '_' and '-', starting with a letter or digit.") var name: String?
    @Option(parsing: .unconditional, help: "A description, with --create.") var desc: String?

    @Flag(help: "Create the task: Swift sources in ~/keiji/tasks/<name> (or, with --command, a command task saved at once).") var create = false
    @Flag(help: "With --create: replace an existing task folder.") var force = false
    @Flag(help: "Build the task with swift build, read its schedule, install it and save it.") var build = false
    @Flag(help: "With --build: apply the new build to the running scheduler now (stops a run in progress).") var restart = false
    @Flag(help: "Print the task (all tasks without --name).") var get = false
    @Flag(help: "List every task by its next run: NEXT, LEFT, LAST, PASSED, TASK, STATE, LAST RESULT (like systemctl list-timers).") var list = false
    @Flag(help: ArgumentHelp("Print the task's latest runs, newest first: slot, start, duration, lateness, result, attempt, trigger, node.",
                             discussion: "NODE is the scheduler that ran it (NODE_NAME, by default the host name; in a cluster, the node that ran the run)."))
    var runs = false
    @Flag(help: "Print the last lines of the task's log.") var logs = false
    @Flag(help: "Stop scheduling the task.") var disable = false
    @Flag(help: "Schedule the task again.") var enable = false
    @Flag(help: "Delete the task: definition, logs and binary (the source folder is kept unless --remove-source).") var delete = false
    @Flag(help: "Clear the task's error so it runs again.") var resolve = false
    @Flag(help: "Run the task now, outside its schedule.") var run = false
    @Flag(help: "Stop the task's current run (the schedule goes on).") var stop = false

    @Option(parsing: .unconditional, help: "With --create: the command the task runs (exec'd directly when it is plain words, else with /bin/sh -c).") var command: String?
    @Option(parsing: .unconditional, help: "Interval: 10s, 5m, 2h (1s to 8760h, which is 365 days; there is no day unit).") var every: String?
    @Option(parsing: .unconditional, help: "Cron expression (5 fields, or 6 with seconds first; a step at most its field's span).") var cron: String?
    @Option(parsing: .unconditional, help: "Day(s) for --at, e.g. friday or mon,wed,fri (each day once).") var on: String?
    @Option(parsing: .unconditional, help: "Time with --on: 10:00PM or 22:00.") var at: String?
    @OptionGroup(title: "Run policies (with --create --command, where one not given is the default; or --build, where a rebuild keeps those not given)") var policyOptions: RunPolicyOptions

    @Flag(help: "With --get, --list or --runs: print JSON.") var json = false
    // The two counts are optional, so that one given to another action is seen (`--lines 100` is the default's value).
    @Option(parsing: .unconditional, help: "With --logs: how many lines (1–100000, default 100).") var lines: Int?
    @Option(parsing: .unconditional, help: "With --runs: how many runs (1–1000, default 20; the view keeps each task's last \(SchedulerState.recentRunLimit), older ones are in the journal).")
    var limit: Int?
    @Flag(help: "With --logs: keep printing new lines.") var follow = false
    @Flag(help: "With --delete: also remove ~/keiji/tasks/<name>.") var removeSource = false

    /// The action flags, in the help's order.
    private var actionFlags: [(flag: String, chosen: Bool)] {
        [("--create", create), ("--build", build), ("--get", get), ("--list", list), ("--runs", runs), ("--logs", logs), ("--disable", disable),
         ("--enable", enable), ("--delete", delete), ("--resolve", resolve), ("--run", run), ("--stop", stop)]
    }

    /// The options given, each with the actions that take it. `--name` is not here: every action
    /// but --list takes it, and --list's refusal of it points at --get.
    private var givenOptions: [(option: String, actions: [String])] {
        let options: [(String, Bool, [String])] = [
            ("--desc", desc != nil, ["--create"]), ("--force", force, ["--create"]), ("--restart", restart, ["--build"]),
            ("--command", command != nil, ["--create"]), ("--every", every != nil, ["--create"]), ("--cron", cron != nil, ["--create"]),
            ("--on", on != nil, ["--create"]), ("--at", at != nil, ["--create"]),
        ] + policyOptions.givenFlags.map { ($0, true, ["--create", "--build"]) } + [
            ("--json", json, ["--get", "--list", "--runs"]), ("--lines", lines != nil, ["--logs"]), ("--limit", limit != nil, ["--runs"]),
            ("--follow", follow, ["--logs"]), ("--remove-source", removeSource, ["--delete"]),
        ]
        return options.filter { $0.1 }.map { ($0.0, $0.2) }
    }

    /// Usage errors, refused before anything runs with exit status 64, as ArgumentParser's own.
    func validate() throws {
        if let word = RawArguments.notUTF8() { throw ValidationError("\(word) is not valid UTF-8") }
        let chosen = actionFlags.filter(\.chosen)
        // No action, or two, is a malformed command line like any other (it exited 1, without the hint).
        guard chosen.count == 1, let action = chosen.first?.flag else {
            throw ValidationError(chosen.isEmpty ? "say what to do: --create, --build, --get, --list, --runs, --logs, --disable, --enable, --delete, --resolve, --run or --stop"
                                                 : "give one action at a time")
        }
        if build, desc != nil {
            // --build reads the description from the task's sources, as it reads the rest: it writes none of them.
            throw ValidationError("--desc goes with --create, not --build: a Swift task's description is TASK_DESCRIPTION in its .env, read at each build")
        }
        if list, let name { throw ValidationError("--list shows every task: leave out --name (one task: keiji task --get --name=\(name))") }
        // A malformed command line, not something the workspace refuses: it exited 1, after the workspace was loaded.
        if !get, !list, name == nil { throw ValidationError("--name is required with \(action)") }
        // An option the action does not take was ignored (`--runs --lines 3` printed 20 runs, `--disable --json` text).
        if let misfit = OptionTable.misfit(givenOptions, action: action) { throw misfit }
        try validateCombinations()
        try validateValues()
    }

    /// Combinations and shapes that are wrong whatever the workspace holds: refused as usage errors (exit 64), as
    /// the README's rule says; they exited 1, as a failed command does.
    private func validateCombinations() throws {
        if create, command == nil {
            guard every == nil, cron == nil, on == nil, at == nil else {
                throw ValidationError("a Swift task's schedule lives in its schedule.swift; --every/--cron/--on go with --command")
            }
            guard policyOptions.givenFlags.isEmpty else {
                throw ValidationError("a Swift task's policies are set when it is built: give them to `keiji task --name=\(name ?? "<name>") --build`")
            }
        }
        if create, command != nil {
            if (on == nil) != (at == nil) { throw ValidationError("--on and --at go together, e.g. --on friday --at 10:00PM") }
            if [every != nil, cron != nil, on != nil].filter({ $0 }).count != 1 {
                throw ValidationError("give one schedule: --every 10s, --cron \"*/5 * * * *\", or --on friday --at 10:00PM")
            }
        }
    }

    /// Values wrong whatever the workspace holds, refused as usage errors (exit 64) with the same messages: a name
    /// no task can have, a schedule that does not parse or never fires, a number out of its range, an empty
    /// `--desc` or `--command`. They exited 1 (`--every +10s`, `--retries 101`), as a refused command does.
    private func validateValues() throws {
        do {
            if let name { _ = try TaskName(name) }
            try lines.map(CountOption.lines.check)
            try limit.map(CountOption.runLimit.check)
            guard create || build else { return }
            let cli = try policyOptions.override()
            // A build's catch-up may come from its program (checked once built): only one the flags give is known here.
            if let catchUp = cli.catchUp { try cli.checkCatchUpLimit(with: catchUp) }
            guard create else { return }
            guard let desc, !desc.isEmpty else { throw CLIError("--desc is required with --create") }
            try RunSize.check(description: desc, command: command)
            guard let command else { return }
            if command.allSatisfy(\.isWhitespace) { throw CLIError("--command must not be empty (leave it out for a Swift task)") }
            // The jitter's bound is the time between two slots: checked with the schedule, as the save does.
            _ = try RunPolicyOverride.resolve(schedule: try scheduleFromFlags(), previous: nil, sdk: RunPolicyOverride(), cli: cli)
            try cli.checkCatchUpLimit(with: cli.catchUp ?? RunPolicy().catchUp)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (workspace, settings) = try loadWorkspace()
            try await ViewRepair.restoreIfMissing(workspace: workspace, settings: settings)
            if get { return try printTasks(workspace: workspace, settings: settings) }
            if list { return try printTimers(workspace: workspace, settings: settings) }
            let taskName = try TaskName(name!)  // validate() refused every other action without --name
            let sender = CommandSender(workspace: workspace, settings: settings)
            if create { return try await createTask(taskName, workspace: workspace, settings: settings, sender: sender) }
            if logs { return try await printLogs(taskName, workspace: workspace, settings: settings) }
            if runs { return try printRuns(taskName, workspace: workspace, settings: settings) }
            if build { return try await buildTask(taskName, workspace: workspace, settings: settings, sender: sender) }
            let (event, verb): (JournalEntry.Event, String) =
                disable ? (.taskDisabled(taskName), "disabled") :
                enable ? (.taskEnabled(taskName), "enabled") :
                delete ? (.taskDeleted(taskName), "deleted") :
                resolve ? (.taskResolved(taskName), "resolved") :
                run ? (.taskTriggered(taskName), "queued to run now") :
                (.taskStopRequested(taskName), settings.database == .sqlite ? "stopping: its run in progress is sent SIGTERM (one not yet begun is withdrawn)"
                    // A cluster's stop is published: whichever node runs the task ends that run (none may be going on).
                    : "stopping: the node running it sends SIGTERM to its run in progress, if one is going on")
            // A delete and a build's install exclude each other (see buildTask); a --remove-source, a create too.
            let lock = delete ? try WorkspaceChangeLock(workspace) : nil
            defer { lock?.release() }
            let delivery: CommandSender.Delivery
            do {
                delivery = try await sender.send(event)
            } catch let error as KeijiError where error.code == .unchanged {
                // Already so: a script that makes sure a task is disabled has what it asked for.
                return Console.say("\(error.message): nothing journaled")
            } catch let error where delete && removeSource && !(error is CommandFateUnknown)
                                    && (try? isUnbuiltSwiftTask(taskName, workspace: workspace, settings: settings)) == true {
                // Not saved (made by --create and never built, or deleted before): its folder is all there is of it.
                try FileSystem.remove(workspace.taskDirectory(taskName))
                if FileSystem.exists(workspace.root + "/Package.swift") { try WorkspaceTemplates.refreshTaskList(workspace) }
                Console.say("task \(taskName) is not saved (never built, or deleted before): removed its source folder")
                return
            }
            // A command task has no binary: its delete said it removed one.
            let hadBinary = delete && FileSystem.exists(workspace.executable(for: taskName))
            if delete {
                // The task is gone from the journal: what it left on disk goes, whether or not it ever ran.
                try LogFile(task: taskName, workspace: workspace, settings: settings).removeAll()
                try FileSystem.remove(workspace.executable(for: taskName))
                for leftover in StagedExecutable.leftovers(of: taskName.rawValue, in: workspace.executablesDirectory) { unlink(leftover) }
                if removeSource {
                    try FileSystem.remove(workspace.taskDirectory(taskName))
                    if FileSystem.exists(workspace.root + "/Package.swift") { try WorkspaceTemplates.refreshTaskList(workspace) }
                }
            }
            Console.say("task \(taskName) \(verb) (\(delivery.description))")
            if delete {
                let removed = ["logs"] + (hadBinary ? ["binary"] : []) + (removeSource ? ["source folder"] : [])
                let list = removed.dropLast().joined(separator: ", ") + (removed.count > 1 ? " and " : "") + removed.last!
                Console.say("removed its \(list)" + (removeSource ? "" : "; source kept in \(workspace.taskDirectory(taskName))"))
            }
        }
    }

    /// A Swift task's folder with no binary and no saved task: what `--create` made before any `--build`, or what a
    /// `--delete` without `--remove-source` kept.
    private func isUnbuiltSwiftTask(_ taskName: TaskName, workspace: Workspace, settings: Settings) throws -> Bool {
        guard FileSystem.exists(workspace.taskDirectory(taskName) + "/function.swift"), !FileSystem.exists(workspace.executable(for: taskName)) else {
            return false
        }
        return try SavedTasks.named(taskName, in: ViewLocation(settings: settings, workspace: workspace)) == nil
    }

    private func createTask(_ taskName: TaskName, workspace: Workspace, settings: Settings, sender: CommandSender) async throws {
        let desc = desc ?? ""  // validate() refused a --create without one
        let lock = try WorkspaceChangeLock(workspace)  // from the checks to the save: no other create moves this folder meanwhile
        defer { lock.release() }
        let directory = workspace.taskDirectory(taskName)
        try workspace.checkFolders(downTo: directory)  // keiji writes there, then runs what is there
        // Everything that can refuse is checked before anything is written.
        let saved = try SavedTasks.checkNoCaseClash(taskName, in: ViewLocation(settings: settings, workspace: workspace))
        if !force {
            if saved != nil {
                throw CLIError("task \(taskName) already exists; use --force to recreate it")
            }
            // A folder holding only what keiji generated (the .env of a deleted command task, or the temporary file of
            // a create killed while it wrote that .env) does not block.
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            if FileSystem.exists(directory) && !contents.allSatisfy({ $0 == ".env" || $0.hasPrefix(".env.tmp-") }) {
                throw CLIError("task \(taskName) already has sources in \(directory); use --force to recreate it")
            }
        }
        let environment = Data(try DotEnv.encode([("TASK_NAME", taskName.rawValue), ("TASK_DESCRIPTION", desc)]).utf8)
        guard let command else {
            // A Swift task: the seed's three files, built later with --build (no schedule or policy flags: validate()).
            // Not over a saved command task: it stayed scheduled with its command until a build, its folder (the scripts
            // it runs) replaced under it, and its next run failed.
            if let saved, saved.executable != workspace.executable(for: taskName) {
                throw CLIError("task \(taskName) is a command task: a Swift task of its name would leave it scheduled with its command "
                               + "until built; delete it first (keiji task --delete --name=\(taskName)), or give --command to redefine it")
            }
            if let problem = SwiftTaskNames.problem(with: taskName.rawValue, besideSwiftTasks: SwiftTaskNames.swiftTaskFolders(workspace)) {
                throw CLIError(problem)
            }
            try WorkspaceTemplates.installWorkspace(workspace)
            let folder = try StagedTaskFolder(directory, mode: 0o755)
            do {
                try FileSystem.writeAtomically(environment, to: directory + "/.env", mode: 0o600)
                try FileSystem.writeAtomically(Data(WorkspaceTemplates.function(description: desc).utf8), to: directory + "/function.swift", mode: 0o644)
                try FileSystem.writeAtomically(Data(WorkspaceTemplates.schedule.utf8), to: directory + "/schedule.swift", mode: 0o644)
                try FileSystem.writeAtomically(Data(WorkspaceTemplates.main.utf8), to: directory + "/main.swift", mode: 0o644)
            } catch {
                folder.rollback()
                throw error
            }
            let backup = folder.commit()
            try WorkspaceTemplates.refreshTaskList(workspace)
            Console.say("created task \(taskName) in \(directory): function.swift, schedule.swift, main.swift, .env")
            if let backup { Console.say("the replaced folder had edits: kept as \(backup)") }
            Console.say("next: edit them, then `keiji task --name=\(taskName) --build`")
            return
        }
        // A new definition: the flags over the defaults (a name reused with --force starts afresh).
        let (spec, policy) = try RunPolicyOverride.resolve(schedule: try scheduleFromFlags(), previous: nil, sdk: RunPolicyOverride(),
                                                           cli: try policyOptions.override())
        // Checked before anything is written: a refused value leaves no folder behind.
        let definition = try TaskDefinition(name: taskName, description: desc, action: .command(command), schedule: spec,
                                            policy: policy, directory: directory).validated()
        // A script of the folder (`./backup.sh`) is run as you: refused now, as each run would refuse it, if others may write it.
        if let program = CommandWords.plainWords(command)?.first { try workspace.checkProgram(program, runIn: directory) }
        // The folder and its .env exist before the save (a first run may come at once); a refusal removes
        // them again, or puts back the .env of a folder that was there: its other files are the owner's (the scripts
        // the command runs), kept, unless it held a Swift task's sources, which a command task replaces.
        let folder = try StagedTaskFolder(directory, mode: 0o755, keepingFiles: !FileSystem.exists(directory + "/function.swift"))
        let delivery: CommandSender.Delivery
        do {
            try FileSystem.writeAtomically(environment, to: directory + "/.env", mode: 0o600)
            delivery = try await sender.send(.taskSaved(definition, taskID: UUID().uuidString.lowercased()), creating: !force)
        } catch {
            if !(error is CommandFateUnknown) { folder.rollback() }
            if case .postgres = settings.database, (error as? KeijiError)?.code == .alreadyExists {
                // Another node's create of the name won: its task runs here too, in this folder (the scheduler made it
                // as it applied that create, perhaps before the rollback removed it).
                try? FileSystem.createDirectory(directory)
            }
            throw error
        }
        let backup = folder.commit()
        Console.say("created task \(taskName) in \(directory)")
        if let backup { Console.say("the replaced folder had edits: kept as \(backup)") }
        Console.say("schedule: \(spec.schedule.displayString)\(spec.timeZone.map { " (\($0))" } ?? "") — saved (\(delivery.description))")
        // A redefinition keeps a task disabled or in error (it is no --enable or --resolve): said, as --build says it.
        if saved != nil, let hold = (try? SavedTasks.named(taskName, in: ViewLocation(settings: settings, workspace: workspace)))?.hold {
            Console.say(hold)
        }
    }

    private func buildTask(_ taskName: TaskName, workspace: Workspace, settings: Settings, sender: CommandSender) async throws {
        let view = ViewLocation(settings: settings, workspace: workspace)
        let saved = try SavedTasks.checkNoCaseClash(taskName, in: view)  // before a build and an install that would be for nothing
        if let saved, saved.executable != workspace.executable(for: taskName), !FileSystem.exists(workspace.taskDirectory(taskName) + "/main.swift") {
            // A command task: its hint said to create it, which then failed as the task exists.
            throw CLIError("task \(taskName) is a command task: nothing to build; change it with `keiji task --create --force --name=\(taskName) "
                           + "--desc=… --command …` and its schedule, restating every flag you want kept (one left out goes back to its default)")
        }
        // No .env, or one without TASK_DESCRIPTION, keeps the saved description (a rebuild emptied it).
        let description = try DotEnv.load(workspace.taskDirectory(taskName) + "/.env")["TASK_DESCRIPTION"] ?? saved?.description ?? ""
        // CLI flag > the program's own policies > the previous definition > the defaults.
        let previous = try TaskPolicyColumns.load(taskName, from: view).map { ($0.spec, $0.policy) }
        // Flags out of range fail now, not after a build.
        _ = try RunPolicyOverride.resolve(schedule: .every(1, .hours), previous: previous, sdk: RunPolicyOverride(), cli: try policyOptions.override())
        let builder = TaskBuilder(workspace: workspace)
        SharedPostgresSession.current?.close()  // a `swift build` may take minutes: no database session held meanwhile
        let (built, binaryPath) = try builder.build(taskName, description: description, previous: previous, cli: try policyOptions.override(),
                                                   givenFlags: policyOptions.givenFlags)
        let definition = try built.validated()
        // From the install to the save, not during the compile (which may take minutes, and would hold up every
        // create): a `--delete` meanwhile removed the binary, and the rollback of a failed build then put it back,
        // a binary of no task that no keiji call could remove.
        let lock = try WorkspaceChangeLock(workspace)
        defer { lock.release() }
        guard FileSystem.exists(workspace.taskDirectory(taskName) + "/main.swift") else {
            throw CLIError("task \(taskName)'s sources were removed while it was building (a `keiji task --delete --remove-source`?): nothing installed or saved")
        }
        // A refused save puts the previous binary back (or removes the new one): nothing half-installed.
        let binary = StagedExecutable(workspace.executable(for: taskName))
        let delivery: CommandSender.Delivery
        do {
            try builder.install(binaryPath, for: taskName)
            if case .postgres(let url) = settings.database {
                // Uploaded from this process: the scheduler publishing the command then finds it stored (one
                // query) instead of holding its cluster link, and so its claims, for the upload.
                Console.progress("storing the binary in the cluster's database for the other nodes…")
                let database = try ClusterDatabase(url: url, node: settings.nodeName)
                _ = try ClusterBinaries(connection: database.connection).store(workspace.executable(for: taskName))
            }
            delivery = try await sender.send(.taskSaved(definition, taskID: UUID().uuidString.lowercased()))
        } catch {
            // A command whose fate is unknown may be saved: the new binary stays, and the kept link goes.
            if error is CommandFateUnknown { binary.commit() } else { binary.rollback() }
            throw error
        }
        binary.commit()
        Console.say("task \(taskName) saved: \(definition.schedule.schedule.displayString) (\(delivery.description))")
        let rebuilt = try? SavedTasks.named(taskName, in: view)  // the save is done: a view unread now costs only what follows
        // A task disabled or in error does not run at its next slot, whatever the build: its hold is said instead.
        let hold = rebuilt?.hold
        let nextSlot = hold == nil ? "the new build runs from its next slot" : nil
        if restart {
            if delivery.viaScheduler, rebuilt?.isRunning == true {
                do {
                    let stopped = try await sender.send(.taskStopRequested(taskName))
                    Console.say("restarting task \(taskName): \(nextSlot ?? "its run is stopping") (\(stopped.description))")
                } catch {
                    Console.say("not restarted: \(error)" + (nextSlot.map { "; \($0)" } ?? ""))
                }
            } else if delivery.viaScheduler {
                Console.say("no run in progress" + (nextSlot.map { ": \($0)" } ?? ""))
            } else {
                Console.say("the scheduler is not running: the new build is used when it starts")
            }
        }
        if let hold { Console.say(hold) }
    }

    /// The one schedule validate() let through.
    private func scheduleFromFlags() throws -> Schedule {
        if let every { return try Self.parseInterval(every) }
        if let cron { return .cron(try CronExpression(cron)) }
        guard let on, let at else { throw CLIError("give one schedule: --every 10s, --cron \"*/5 * * * *\", or --on friday --at 10:00PM") }
        let days = try on.split(separator: ",", omittingEmptySubsequences: false).map { try Weekday(parsing: String($0)) }
        return .weekly(days: days, at: try TimeOfDay(parsing: at))
    }

    static func parseInterval(_ text: String) throws -> Schedule {
        let units: [(String, Schedule.Unit)] = [("s", .seconds), ("m", .minutes), ("h", .hours)]
        for (suffix, unit) in units where text.hasSuffix(suffix) {
            if let n = InputRanges.plainWholeNumber(text.dropLast()), n > 0 { return .every(n, unit) }
        }
        throw CLIError("invalid interval \"\(text)\": use a positive number with s, m or h, e.g. 10s, 5m, 2h")
    }

    private func printLogs(_ taskName: TaskName, workspace: Workspace, settings: Settings) async throws {
        guard try SavedTasks.named(taskName, in: ViewLocation(settings: settings, workspace: workspace)) != nil else {
            throw CLIError("no task named \(taskName)")
        }
        let log = LogFile(task: taskName, workspace: workspace, settings: settings)
        var waitingForFirstRun = !FileSystem.exists(log.activePath) && !FileSystem.exists(log.directory)
        if waitingForFirstRun {
            // Following is what a user does right after --create or --build: it waits for the log to appear.
            guard follow else { throw CLIError("task \(taskName) has not run yet: no log (\(log.activePath))") }
            Console.progress("task \(taskName) has not run yet: waiting for its first run (Ctrl-C to stop)")
        } else {
            Console.say(byteLines: try log.lastLineBytes(lines ?? 100))
            guard follow else { return }
        }
        SharedPostgresSession.current?.close()  // following lasts until Ctrl-C: no database session held meanwhile
        // Made before the first run's file exists, the follower reads that file from its start.
        var follower = LogFollower(path: log.activePath, folder: log.directory)
        defer { follower.close() }
        for poll in 1... {
            try await Task.sleep(for: .milliseconds(300))
            if Console.readerGone() { return }
            if follower.printAppended() {
                // Nothing more can be shown (a closed pipe with SIGPIPE ignored, a full disk): the call ends and says so.
                if Console.stdoutFailed { return }
                waitingForFirstRun = false
                continue
            }
            // No log folder before the first run says nothing of a delete: the view is asked, every 3 s.
            if waitingForFirstRun {
                guard poll % 10 == 0 else { continue }
                defer { SharedPostgresSession.current?.close() }
                if try SavedTasks.named(taskName, in: ViewLocation(settings: settings, workspace: workspace)) != nil { continue }
            }
            return Console.progress("task \(taskName) was deleted: its log is gone")
        }
    }
}
