import Foundation
import KeijiCore

extension TaskCommand {
    static let columns = ["ID", "TaskId", "Name", "Description", "Schedule", "LastExecutionTime", "NextExecutionTime", "LogPath",
                          "Slug", "Type", "Executable", "IsRunning", "IsQueued", "IsError", "IsDisabled", "ErrorTxt"]

    /// The seed's `TaskModel` block for one task (with `--name`) or every task, read from the query view,
    /// followed by the task's zone and run policies.
    func printTasks(workspace: Workspace, settings: Settings) throws {
        if let warning = SchedulerTimeZone.mismatchWarning(settings, workspace: workspace) { Console.progress(warning) }
        if let warning = ViewLag.warning(workspace) { Console.progress(warning) }
        let view = ViewLocation(settings: settings, workspace: workspace)
        guard let database = try view.openForReading() else {
            if let name { throw CLIError("no task named \(name)") }
            Console.say(json ? "[]" : "no tasks yet")
            return
        }
        func query(_ columns: [String]) throws -> [[String?]] {
            try database.taskModels(columns, where: name.map { .name($0) } ?? .all)
        }
        // A view from before the policy columns (rebuilt at the next command or scheduler start) shows the seed's.
        var rows = try (try? query(Self.columns + TaskPolicyColumns.names)) ?? query(Self.columns)
        // A run the scheduler's crash ended is not in progress, as `--list` and `system --status` say: `IsRunning`
        // stayed true until the next start, and a script polling it waited as long.
        if CrashedRuns.viewMayShowThem(view, workspace: workspace), let running = Self.columns.firstIndex(of: "IsRunning") {
            for index in rows.indices where rows[index][running] == "1" { rows[index][running] = "0" }
        }
        if let name, rows.isEmpty { throw CLIError("no task named \(name)") }
        // The zone in effect is the running scheduler's: an edit of TIME_ZONE applies at its restart (the warning above).
        let zone = SchedulerTimeZone.running(workspace) ?? settings.timeZoneIdentifier
        if json {
            let objects = rows.map { row in
                var object = TaskModelJSON.object(columns: Self.columns, row: Array(row.prefix(Self.columns.count)))
                let policy = TaskPolicyColumns(row.dropFirst(Self.columns.count))?.jsonFields(defaultTimeZone: zone) ?? [:]
                object.merge(policy) { seed, _ in seed }
                return object
            }
            return try Console.say(json: name == nil ? objects as Any : objects.first as Any)
        }
        if rows.isEmpty { Console.say("no tasks yet") }
        let rule = String(repeating: "=", count: 100)
        for row in rows {
            if name == nil { Console.say(rule) }
            Console.say("TaskModel:")
            for (column, value) in zip(Self.columns, row) {
                var text = value ?? "N/A"
                if column.hasPrefix("Is") { text = text == "1" ? "true" : "false" }
                if column == "ErrorTxt" { text = value ?? "" }
                Console.say("\(column): \(VisibleText.escaped(text))")
            }
            for (key, text) in TaskPolicyColumns(row.dropFirst(Self.columns.count))?.lines(defaultTimeZone: zone) ?? [] {
                Console.say("\(key): \(text)")
            }
            if name == nil { Console.say(rule) }
        }
    }
}
