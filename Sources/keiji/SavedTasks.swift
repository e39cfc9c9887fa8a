import KeijiCore

/// The tasks the query view holds, for the checks the CLI makes before it creates anything (the journal
/// command is checked again where the state is; these checks only keep files from being made for nothing).
enum SavedTasks {
    struct Entry {
        var name: String
        var isRunning: Bool
    }

    static func all(in workspace: Workspace) throws -> [Entry] {
        guard FileSystem.exists(workspace.databaseFile) else { return [] }
        let db = try SQLiteDatabase(path: workspace.databaseFile, readOnly: true)
        return try db.rows("SELECT Name, IsRunning FROM task_models").map { Entry(name: $0[0] ?? "", isRunning: $0[1] == "1") }
    }

    static func named(_ name: TaskName, in workspace: Workspace) throws -> Entry? {
        try all(in: workspace).first { $0.name == name.rawValue }
    }

    /// Refuses a new name that differs only in case from a saved task (the two would share logs).
    static func checkNoCaseClash(_ name: TaskName, in workspace: Workspace) throws {
        if let clash = try all(in: workspace).first(where: { $0.name.lowercased() == name.slug && $0.name != name.rawValue }) {
            throw CLIError("a task named \(clash.name) already exists (names differing only in case would share logs); nothing was created")
        }
    }
}
