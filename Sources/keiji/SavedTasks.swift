import KeijiCore

/// The tasks the query view holds, for the checks the CLI makes before it creates anything (the journal
/// command is checked again where the state is; these checks only keep files from being made for nothing).
enum SavedTasks {
    struct Entry {
        var name: String
        var isRunning: Bool
        var isError: Bool
        var isDisabled: Bool
        var description: String
        /// What a run executes, as the view shows it: a Swift task's is its binary, `Workspace.executable(for:)`.
        var executable: String

        /// Why the task does not run at its slots, and the command that lets it: a new build alone does not.
        var hold: String? {
            switch (isDisabled, isError) {
            case (true, true): "task \(name) is disabled and in error: it runs again once enabled and resolved (keiji task --enable --name=\(name), then --resolve)"
            case (true, false): "task \(name) is disabled: it runs again once enabled (keiji task --enable --name=\(name))"
            case (false, true): "task \(name) is in error: it runs again once resolved (keiji task --resolve --name=\(name))"
            case (false, false): nil
            }
        }
    }

    /// The saved task whose name equals `name` up to case: one lookup on the view's unique `Slug` column (the
    /// lowercased name), so a check costs the same with 10 tasks or 10,000.
    private static func sameSlug(as name: TaskName, in view: ViewLocation) throws -> Entry? {
        guard let database = try view.openForReading() else { return nil }
        return try database.taskModels(["Name", "IsRunning", "IsError", "IsDisabled", "Description", "Executable"], where: .slug(name.slug)).first.map {
            Entry(name: $0[0] ?? "", isRunning: $0[1] == "1", isError: $0[2] == "1", isDisabled: $0[3] == "1", description: $0[4] ?? "", executable: $0[5] ?? "")
        }
    }

    static func named(_ name: TaskName, in view: ViewLocation) throws -> Entry? {
        try sameSlug(as: name, in: view).flatMap { $0.name == name.rawValue ? $0 : nil }
    }

    /// The saved task of this very name, if any; refuses a name that differs only in case from a saved task
    /// (the two would share logs).
    @discardableResult
    static func checkNoCaseClash(_ name: TaskName, in view: ViewLocation) throws -> Entry? {
        guard let saved = try sameSlug(as: name, in: view) else { return nil }
        guard saved.name == name.rawValue else {
            throw CLIError("a task named \(saved.name) already exists (names differing only in case would share logs); nothing was created")
        }
        return saved
    }
}
