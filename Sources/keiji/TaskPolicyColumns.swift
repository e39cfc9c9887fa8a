import Foundation
import KeijiCore

/// A task's zone, jitter and run policy as the query view holds them (`ScheduleInfo` and `Policy`, JSON):
/// what `--get` shows after the seed's columns, and the "previous definition" a rebuild keeps.
struct TaskPolicyColumns {
    static let names = ["ScheduleInfo", "Policy"]

    let spec: ScheduleSpec
    let policy: RunPolicy

    init(spec: ScheduleSpec, policy: RunPolicy) {
        self.spec = spec
        self.policy = policy
    }

    /// Decodes the two columns (in the order of `names`); nil when either is missing or unreadable.
    init?(_ values: ArraySlice<String?>) {
        guard values.count == 2, let info = values.first ?? nil, let policy = values.last ?? nil,
            let spec = try? JSONDecoder().decode(ScheduleSpec.self, from: Data(info.utf8)),
            let decoded = try? JSONDecoder().decode(RunPolicy.self, from: Data(policy.utf8))
        else { return nil }
        self.init(spec: spec, policy: decoded)
    }

    /// The task's current zone, jitter and policy, or nil if it has no definition in the view yet (or the
    /// view predates the `Policy` column: it is rebuilt by the next command or scheduler start).
    static func load(_ name: TaskName, from view: ViewLocation) throws -> TaskPolicyColumns? {
        guard let database = try view.openForReading() else { return nil }
        let rows = try? database.taskModels(names, where: .name(name.rawValue))
        return rows?.first.flatMap { TaskPolicyColumns($0[...]) }
    }

    /// `--get` lines, after ErrorTxt: the zone in effect (the task's, or TIME_ZONE's) and every policy.
    func lines(defaultTimeZone: String) -> [(String, String)] {
        func seconds(_ value: Double) -> String { value == value.rounded() ? "\(Int(value))s" : "\(value)s" }
        return [
            ("TimeZone", spec.timeZone ?? "\(defaultTimeZone) (TIME_ZONE)"),
            ("Jitter", "\(spec.jitterSeconds)s"),
            ("Timeout", policy.timeoutSeconds.map(seconds) ?? "none"),
            ("Grace", seconds(policy.graceSeconds)),
            ("Retries", "\(policy.retries)"),
            ("RetryBackoff", seconds(policy.retryBackoffSeconds)),
            ("Overlap", policy.overlap.rawValue),
            ("CatchUp", policy.catchUp.rawValue),
            ("CatchUpLimit", "\(policy.catchUpLimit)"),
            ("RerunInterrupted", "\(policy.rerunInterrupted)"),
            ("ContinueOnError", "\(policy.continueOnError)"),
        ]
    }

    /// `--get --json` keys: `TimeZone` (the zone in effect), `JitterSeconds` and `Policy` (typed values).
    func jsonFields(defaultTimeZone: String) -> [String: Any] {
        var object: [String: Any] = [
            "graceSeconds": policy.graceSeconds, "overlap": policy.overlap.rawValue, "retries": policy.retries,
            "retryBackoffSeconds": policy.retryBackoffSeconds, "catchUp": policy.catchUp.rawValue, "catchUpLimit": policy.catchUpLimit,
            "rerunInterrupted": policy.rerunInterrupted, "continueOnError": policy.continueOnError,
        ]
        object["timeoutSeconds"] = policy.timeoutSeconds ?? NSNull()
        return ["TimeZone": spec.timeZone ?? defaultTimeZone, "JitterSeconds": spec.jitterSeconds, "Policy": object]
    }
}
