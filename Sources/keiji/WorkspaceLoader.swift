import KeijiCore

/// The workspace and its settings, or a clear error telling the user to run `keiji init`.
func loadWorkspace() throws -> (Workspace, Settings) {
    let workspace = try Workspace.current()
    guard try FileSystem.existsOrThrows(workspace.settingsFile) else {
        // A workspace whose settings.conf alone is gone is not "no workspace": init writes a default one and keeps the rest.
        if FileSystem.isDirectory(workspace.root) && FileSystem.isDirectory(workspace.tasksDirectory) {
            throw CLIError("\(workspace.settingsFile) is missing; `keiji init` writes a default one (it keeps the workspace's tasks)")
        }
        throw CLIError("no workspace at \(workspace.root); run `keiji init` first")
    }
    return (workspace, try Settings.load(from: workspace.settingsFile))
}
