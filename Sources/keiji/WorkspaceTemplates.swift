import Foundation
import KeijiCore

/// The files `keiji init` and `keiji task --create` write into `~/keiji`: one Swift package for all tasks
/// (so the SDK compiles once and rebuilds are incremental, like the seed's single go.mod), the SDK itself,
/// and each task's three source files.
enum WorkspaceTemplates {
    /// `~/keiji/Package.swift`: every folder in `tasks/` with a `main.swift` is an executable of that name.
    static let workspacePackage = """
        // swift-tools-version: 5.9
        // keiji's task workspace: every folder in tasks/ with a main.swift is a task program.
        // Written by `keiji init`; you may add dependencies here.
        import Foundation
        import PackageDescription

        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let tasks = ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("tasks").path)) ?? [])
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("tasks/\\($0)/main.swift").path) }
            .sorted()

        let package = Package(
            name: "keiji-workspace",
            dependencies: [.package(path: "sdk")],
            targets: tasks.map { name in
                .executableTarget(name: name, dependencies: [.product(name: "KeijiTaskKit", package: "sdk")], path: "tasks/\\(name)",
                                  exclude: [".env"])
            }
        )

        """

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
        // The task's work. Throw to fail the run: the message goes to the task log and the task waits for
        // `keiji task --resolve`.
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
        let schedule = Schedule.every(10).seconds

        """

    static let main = """
        // This file is generated. Modify cautiously: `--schedule` and `--run` are how keiji talks to the task.
        import KeijiTaskKit

        await TaskMain.run(schedule: schedule, function: function)

        """

    /// Writes (or refreshes) the workspace package and the SDK.
    static func installWorkspace(_ workspace: Workspace) throws {
        try FileSystem.createDirectory(workspace.root + "/sdk/Sources/KeijiTaskKit", mode: 0o755)
        try FileSystem.writeAtomically(Data(sdkPackage.utf8), to: workspace.root + "/sdk/Package.swift", mode: 0o644)
        try FileSystem.writeAtomically(Data(TaskKitSource.text.utf8), to: workspace.root + "/sdk/Sources/KeijiTaskKit/KeijiTaskKit.swift", mode: 0o644)
        if !FileSystem.exists(workspace.root + "/Package.swift") {
            try FileSystem.writeAtomically(Data(workspacePackage.utf8), to: workspace.root + "/Package.swift", mode: 0o644)
        }
    }
}
