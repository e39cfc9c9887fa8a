import KeijiCore

/// The workspace and its settings, or a clear error telling the user to run `keiji init`.
func loadWorkspace() throws -> (Workspace, Settings) {
    let workspace = try Workspace.current()
    guard try FileSystem.existsOrThrows(workspace.settingsFile) else {
        throw CLIError("no workspace at \(workspace.root); run `keiji init` first")
    }
    return (workspace, try Settings.load(from: workspace.settingsFile))
}
