import Foundation
import KeijiCore

/// The files `keiji init` and `keiji task --create` write into `~/keiji`: one Swift package for all tasks
/// (so the SDK compiles once and rebuilds are incremental, like the seed's single go.mod), the SDK itself,
/// and each task's three source files.
enum WorkspaceTemplates {
    /// `~/keiji/Package.swift`: one executable target per task folder, listed as literal text between two
    /// marker lines. SwiftPM caches a manifest's evaluation until the manifest's *text* changes, so a
    /// manifest that listed `tasks/` when evaluated went stale at the first new or deleted task ("no product
    /// named 'b'", "invalid custom path"). keiji rewrites the list whenever the task set may have changed
    /// (`init`, `--create`, `--build`, `--delete --remove-source`); everything outside the markers is the
    /// user's. One package for all tasks (rather than one per task) keeps the SDK compiled once. No target excludes
    /// `.env`: SwiftPM skips hidden files anyway, and an exclude of a missing file warned at every build.
    static func workspacePackage(tasks: [String]) -> String {
        """
        // swift-tools-version: 5.9
        // keiji's task workspace: one executable target per folder in tasks/ with a main.swift.
        // keiji rewrites the lines between the two `keiji:tasks` markers whenever tasks are created, built
        // or deleted; you may add dependencies and edit everything else.
        import PackageDescription

        let tasks: [String] = [
        \(taskList(tasks))
        ]

        let package = Package(
            name: "keiji-workspace",
            dependencies: [.package(path: "sdk")],
            targets: tasks.map { name in
                .executableTarget(name: name, dependencies: [.product(name: "KeijiTaskKit", package: "sdk")], path: "tasks/\\(name)")
            }
        )

        """
    }

    static let taskListStart = "    // keiji:tasks begin (generated)"
    static let taskListEnd = "    // keiji:tasks end"

    static func taskList(_ tasks: [String]) -> String {
        ([taskListStart] + tasks.map { "    \"\($0)\"," } + [taskListEnd]).joined(separator: "\n")
    }

    /// The task folders a build can compile: valid task names (so they are safe inside a Swift string literal) that
    /// ``SwiftTaskNames`` allows (a folder named `Foundation`, made by an older keiji, hid the toolchain's from every
    /// task's build), with a `main.swift`, sorted. Of two folders whose modules would be one, the first is listed.
    static func taskFolders(_ workspace: Workspace) -> [String] {
        var listed: [String] = []
        for name in SwiftTaskNames.swiftTaskFolders(workspace) where (try? TaskName(name)) != nil {
            if SwiftTaskNames.problem(with: name, besideSwiftTasks: listed) == nil { listed.append(name) }
        }
        return listed
    }

    /// The `.env` exclude an older keiji generated, exactly as it wrote it, and what replaces it.
    static let olderExclude = (written: ", path: \"tasks/\\(name)\",\n                          exclude: [\".env\"])",
                               now: ", path: \"tasks/\\(name)\")")

    /// Brings `~/keiji/Package.swift`'s task list in line with `tasks/`, rewriting the file only when its text
    /// changes. A manifest without the markers (written by an older keiji, which listed `tasks/` at
    /// evaluation time) is replaced whole; the old one is kept as `Package.swift.old`. The `.env` exclude an
    /// older keiji wrote is taken out where it is as written (edited, it is the user's).
    static func refreshTaskList(_ workspace: Workspace) throws {
        let path = workspace.root + "/Package.swift"
        let tasks = taskFolders(workspace)
        var text = workspacePackage(tasks: tasks)
        if let data = FileManager.default.contents(atPath: path) {
            let current = String(decoding: data, as: UTF8.self)
            if let start = current.range(of: taskListStart), let end = current.range(of: taskListEnd, range: start.upperBound..<current.endIndex) {
                text = current.replacingCharacters(in: start.lowerBound..<end.upperBound, with: taskList(tasks))
                    .replacingOccurrences(of: olderExclude.written, with: olderExclude.now)
            } else {
                try FileSystem.writeAtomically(data, to: path + ".old", mode: 0o644)
                Console.progress("\(path) had no keiji:tasks markers; replaced it (the old one is \(path).old)")
            }
            if text == current { return }
        }
        try FileSystem.writeAtomically(Data(text.utf8), to: path, mode: 0o644)
    }

    static let sdkPackage = """
        // swift-tools-version: 5.9
        // The keiji task SDK, shipped with keiji (written by `keiji init`; replaced when keiji is updated).
        import PackageDescription

        let package = Package(
            name: "sdk",
            products: [.library(name: "KeijiTaskKit", targets: ["KeijiTaskKit"])],
            targets: [.target(name: "KeijiTaskKit")]
        )

        """

    static func function(description: String) -> String {
        """
        // The task's work. Throw to fail the run (e.g. `throw TaskError("disk full")`, with `import KeijiTaskKit`):
        // the message goes to the task log and to its ErrorTxt, and the task waits for `keiji task --resolve`.
        func function() async throws {
            print("hello from \\(CommandLine.arguments[0].split(separator: "/").last ?? "task")")
        }

        """
    }

    static let schedule = """
        import KeijiTaskKit

        // When the task runs. Other forms:
        //   Schedule.every(5).minutes      Schedule.every(2).hours
        //   Schedule.on(.friday).at("10:00PM")      Schedule.on(.monday, .thursday).at("22:00")
        //   Schedule.cron("*/15 * * * *")
        // Policies, each optional (a `keiji task --build` flag overrides them; a rebuild keeps the rest):
        //   Schedule.on(.monday).at("09:00").timeZone("Europe/Paris").timeout(60).retries(2, backoff: 5)
        //   .overlap(.allow)  .catchUp(.all, limit: 5)  .rerunInterrupted(false)  .continueOnError()  .jitter(30)
        let schedule = Schedule.every(10).seconds

        """

    static let main = """
        // This file is generated. Modify cautiously: `--schedule` and `--run` are how keiji talks to the task.
        import KeijiTaskKit

        await TaskMain.run(schedule: schedule, function: function)

        """

    /// Whether the task folder `directory` holds nothing but what `--create` writes, unedited: the three templates and
    /// a `.env` with only `TASK_NAME` and `TASK_DESCRIPTION` (or no `.env`, or a create's leftover `.env.tmp-*`).
    /// Such a folder can be replaced without a backup: nothing in it is its owner's work.
    static func holdsOnlyGeneratedFiles(_ directory: String) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return false }
        var description = ""
        if names.contains(".env") {
            guard let values = try? DotEnv.load(directory + "/.env"), Set(values.keys).isSubset(of: ["TASK_NAME", "TASK_DESCRIPTION"]) else { return false }
            description = values["TASK_DESCRIPTION"] ?? ""
        }
        let templates = ["function.swift": function(description: description), "schedule.swift": schedule, "main.swift": main]
        return names.allSatisfy { name in
            if name == ".env" || name.hasPrefix(".env.tmp-") { return true }
            guard let template = templates[name], let data = FileManager.default.contents(atPath: directory + "/" + name) else { return false }
            return data == Data(template.utf8)
        }
    }

    /// Writes (or refreshes) the SDK and the workspace package's task list.
    static func installWorkspace(_ workspace: Workspace) throws {
        try FileSystem.createDirectory(workspace.root + "/sdk/Sources/KeijiTaskKit", mode: 0o755)
        try FileSystem.writeAtomically(Data(sdkPackage.utf8), to: workspace.root + "/sdk/Package.swift", mode: 0o644)
        try FileSystem.writeAtomically(Data(TaskKitSource.text.utf8), to: workspace.root + "/sdk/Sources/KeijiTaskKit/KeijiTaskKit.swift", mode: 0o644)
        try refreshTaskList(workspace)
    }
}
