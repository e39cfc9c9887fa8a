import Foundation
import KeijiCore

/// The last recovery report as `keiji system --status --json` shows it: `recovery.json`'s fields, with its instants
/// (the start's `startedAt` and `journalAheadAt`, an interrupted run's `startedAt`, a resumed retry's `dueAt`, a takeover's `at`) in ISO 8601
/// as every other time of that output; they were epoch milliseconds, alone in it. A `slot` stays the number that
/// names it (seconds since the epoch), as in the journal.
enum RecoveryReportJSON {
    static func object(_ report: RecoveryReport) throws -> Any {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any] ?? [:]
        func iso(_ value: Any) -> Any { (value as? NSNumber).map { ISO8601.string(fromMilliseconds: $0.int64Value) } ?? value }
        func converting(_ key: String, in list: Any?) -> Any? {
            guard let entries = list as? [[String: Any]] else { return list }
            return entries.map { entry in
                var entry = entry
                if let value = entry[key] { entry[key] = iso(value) }
                return entry
            }
        }
        if let startedAt = object["startedAt"] { object["startedAt"] = iso(startedAt) }
        if let ahead = object["journalAheadAt"] { object["journalAheadAt"] = iso(ahead) }
        object["interruptedRuns"] = converting("startedAt", in: object["interruptedRuns"])
        object["retriesResumed"] = converting("dueAt", in: object["retriesResumed"])
        if var cluster = object["cluster"] as? [String: Any] {
            cluster["takenOver"] = converting("at", in: cluster["takenOver"])
            object["cluster"] = cluster
        }
        return object
    }
}
