import Foundation

/// A `task_models` row as JSON with real types, the same as `keiji system --status --json` uses: `ID` a
/// number, the `Is…` flags booleans, a time not known yet `null`, everything else a string. The schema is
/// documented in docs/task-command.md.
enum TaskModelJSON {
    static func object(columns: [String], row: [String?]) -> [String: Any] {
        var object: [String: Any] = [:]
        for (column, value) in zip(columns, row) {
            guard let value else {
                object[column] = NSNull()
                continue
            }
            if column == "ID" {
                object[column] = Int(value).map { $0 as Any } ?? NSNull()
            } else if column.hasPrefix("Is") {
                object[column] = value == "1"
            } else {
                object[column] = value
            }
        }
        return object
    }
}
