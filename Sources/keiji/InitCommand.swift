import ArgumentParser
import Foundation
import KeijiBus
import KeijiCore

/// `keiji init`: creates `~/keiji` (settings, tasks) and `~/.keiji` (journal, db, logs, bus token).
/// Idempotent; never overwrites an existing settings file.
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create the workspace (~/keiji) and system folder (~/.keiji).")

    func run() async throws {
        try await reportingErrors {
            let workspace = try Workspace.current()
            try FileSystem.createDirectory(workspace.tasksDirectory, mode: 0o755)
            if FileSystem.exists(workspace.settingsFile) {
                _ = try Settings.load(from: workspace.settingsFile)  // validate; report problems now
                Console.say("settings: \(workspace.settingsFile) exists and is valid (left as it is)")
            } else {
                // 0600: DB_URL may come to hold a PostgreSQL password.
                try FileSystem.writeAtomically(Data(Settings.defaultFileContents().utf8), to: workspace.settingsFile, mode: 0o600)
                Console.say("settings: created \(workspace.settingsFile) (mode 0600)")
            }
            try WorkspaceTemplates.installWorkspace(workspace)
            Console.say("package:  \(workspace.root)/Package.swift (all tasks), task SDK in \(workspace.root)/sdk")
            try workspace.createSystemDirectories()
            _ = try BusToken.loadOrCreate(workspace)
            // Its mode as it is: one made before, and not writable by others, is left as it was (``PrivateFolder``).
            let mode = PrivateFolder.mode(of: workspace.systemRoot) ?? "unknown"
            Console.say("system:   \(workspace.systemRoot) (journal, db, logs; mode \(mode); bus token 0600)")
            Console.say("tasks:    \(workspace.tasksDirectory)")
            Console.say("next:     keiji task --create --name=hello --desc=\"says hello\"   (a Swift task; or add --command \"…\" --every 10s)")
        }
    }
}
