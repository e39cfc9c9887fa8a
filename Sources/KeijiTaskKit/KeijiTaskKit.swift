// KeijiTaskKit: the tiny SDK a keiji task program imports. It has no dependencies, so a task builds in
// seconds, and `keiji init` ships this very file into ~/keiji/sdk (no network needed).
//
//     // schedule.swift
//     let schedule = Schedule.every(10).seconds
//     // or: Schedule.on(.friday).at("10:00PM"), Schedule.cron("*/5 * * * *")
//
//     // main.swift
//     await TaskMain.run(schedule: schedule, function: function)
//
// `<task> --schedule` prints the schedule as JSON (what `keiji task --build` reads);
// `<task> --run` runs `function()`: a thrown error prints its message and exits 1.

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif

/// When a task runs: the seed's builder (`every(n).seconds`, `on(day).at(time)`), plus cron.
public struct Schedule: Sendable {
    /// The JSON keiji's scheduler reads, e.g. `{"every":10,"unit":"seconds"}`.
    public let json: String

    public static func every(_ count: Int) -> Interval { Interval(count: count) }
    public static func on(_ days: Day...) -> DayTime { DayTime(days: days) }
    public static func cron(_ expression: String) -> Schedule {
        Schedule(json: "{\"cron\":\(quoted(expression))}")
    }

    public struct Interval: Sendable {
        let count: Int
        public var seconds: Schedule { unit("seconds") }
        public var minutes: Schedule { unit("minutes") }
        public var hours: Schedule { unit("hours") }
        func unit(_ name: String) -> Schedule { Schedule(json: "{\"every\":\(count),\"unit\":\"\(name)\"}") }
    }

    public struct DayTime: Sendable {
        let days: [Day]
        /// `"10:00PM"` (12-hour) or `"22:00"` (24-hour).
        public func at(_ time: String) -> Schedule {
            Schedule(json: "{\"days\":[\(days.map { quoted($0.rawValue) }.joined(separator: ","))],\"at\":\(quoted(time))}")
        }
    }

    public enum Day: String, Sendable {
        case monday = "Monday", tuesday = "Tuesday", wednesday = "Wednesday", thursday = "Thursday"
        case friday = "Friday", saturday = "Saturday", sunday = "Sunday"
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += scalar.value < 0x20 ? " " : String(scalar)
            }
        }
        return out + "\""
    }
}

/// The entry point of a task program.
public enum TaskMain {
    public static func run(schedule: Schedule, function: () async throws -> Void) async -> Never {
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.contains("--schedule") {
            print(schedule.json)
            exit(0)
        }
        guard arguments.contains("--run") else {
            fputs("valid arguments: --schedule, --run\n", stderr)
            exit(64)
        }
        do {
            try await function()
            exit(0)
        } catch {
            fputs("task failed: \(error)\n", stderr)
            exit(1)
        }
    }
}
