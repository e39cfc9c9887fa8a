import KeijiCore

/// The tasks the query view holds, for the checks the CLI makes before it creates anything (the journal
/// command is checked again where the state is; these checks only keep files from being made for nothing).
enum SavedTasks {
    struct Entry {
        var name: String
        var isRunning: Bool
    }

    /// The saved task whose name equals `name` up to case: one lookup on the view's unique `Slug` column (the
    /// lowercased name), so a check costs the same with 10 tasks or 10,000.
    private static func sameSlug(as name: TaskName, in view: ViewLocation) throws -> Entry? {
        guard let database = try view.openForReading() else { return nil }
        return try database.taskModels(["Name", "IsRunning"], where: .slug(name.slug))
            .first.map { Entry(name: $0[0] ?? "", isRunning: $0[1] == "1") }
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
