/// A workspace moved or copied to another HOME (a renamed home directory, a new machine): its saved definitions
/// still name the old HOME's task folder and Swift binary. A task's folder is always `<workspace>/tasks/<name>` and
/// its binary `~/.keiji/exec/tasks/<name>` (`--create` and `--build` save nothing else), so such a path in another
/// HOME is rebased onto this workspace: the old HOME's scripts and binaries, if they are still there, never run.
/// A path elsewhere is kept as saved.
extension TaskDefinition {
    /// This definition with the paths it saved in another workspace's places made this workspace's, or nil when it
    /// has none.
    public func rebased(onto workspace: Workspace) -> TaskDefinition? {
        var rebased = self
        let folder = workspace.taskDirectory(name)
        if directory != folder && directory.hasSuffix("/keiji/tasks/" + name.rawValue) { rebased.directory = folder }
        let binary = workspace.executable(for: name)
        if case .binary(let path) = action, path != binary, path.hasSuffix("/.keiji/exec/tasks/" + name.rawValue) {
            rebased.action = .binary(path: binary)
        }
        return rebased == self ? nil : rebased
    }
}

extension StateLoader.Loaded {
    /// Rebases the definitions saved in another workspace onto `workspace` (``TaskDefinition/rebased(onto:)``), and
    /// notes their tasks for the view's catch-up: their rows show the old paths. Returns the old folder of the first
    /// one, for the scheduler's log, or nil when none moved.
    public mutating func rebase(onto workspace: Workspace) -> String? {
        var first: String?
        for (name, task) in state.tasks {
            guard let rebased = task.definition.rebased(onto: workspace) else { continue }
            if first == nil { first = task.definition.directory }
            state.tasks[name]?.definition = rebased
            self.rebased.insert(name)
        }
        return first
    }
}
