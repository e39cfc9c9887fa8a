import Foundation
import KeijiCore

/// `keiji task --list`: every task in one table, in the spirit of `systemctl list-timers` (NEXT, LEFT, LAST,
/// PASSED, TASK, STATE, LAST RESULT), soonest next run first; tasks with none (disabled, in error, a fired
/// one-shot) last, by name. Read from the query view in one statement.
struct TimerTable {
    struct Timer {
        var name: String
        /// Milliseconds since the epoch; nil when the task will not run (disabled, in error, nothing left).
        var next: Int64?
        /// When its last run started.
        var last: Int64?
        /// scheduled, running, interrupted (running when the scheduler crashed), queued, disabled or error.
        var state: String
        /// The latest finished run's `Outcome`, `ExitCode`, `Signal` and `Message`; nil before any run.
        var outcome: String?
        var exitCode: String?
        var signal: String?
        var message: String?

        var result: String { RunResultText.text(outcome: outcome, exitCode: exitCode, signal: signal, message: message) }
    }

    let timers: [Timer]

    /// `runsEndedByACrash`: no scheduler runs, so a run the view marks running was ended by a crash (`CrashedRuns`).
    static func read(from database: any ViewDatabase, runsEndedByACrash: Bool) throws -> TimerTable {
        let rows = try database.tasksWithLatestRun(["Name", "NextExecutionTime", "LastExecutionTime", "IsRunning", "IsQueued", "IsError", "IsDisabled"],
                                                   runColumns: ["Outcome", "ExitCode", "Signal", "Message"])
        let timers = rows.map { row in
            let state = row[3] == "1" ? (runsEndedByACrash ? "interrupted" : "running") : row[4] == "1" ? "queued" : row[5] == "1" ? "error" : row[6] == "1" ? "disabled" : "scheduled"
            return Timer(name: row[0] ?? "", next: row[1].flatMap(ISO8601.milliseconds(from:)), last: row[2].flatMap(ISO8601.milliseconds(from:)),
                         state: state, outcome: row[7], exitCode: row[8], signal: row[9], message: row[10])
        }
        return TimerTable(timers: timers.sorted { a, b in
            switch (a.next, b.next) {
            case let (x?, y?) where x != y: x < y
            case (_?, nil): true
            case (nil, _?): false
            default: a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
            }
        })
    }

    /// The table and the footer (`3 tasks listed.`).
    func lines(now: Int64, time: TimeText) -> [String] {
        var table = TextColumns(["NEXT", "LEFT", "LAST", "PASSED", "TASK", "STATE", "LAST RESULT"])
        for t in timers {
            table.rows.append([
                t.next.map(time.instant) ?? "-", t.next.map { Self.left(next: $0, now: now) } ?? "-", t.last.map(time.instant) ?? "-",
                t.last.map { Self.passed(last: $0, now: now) } ?? "-", t.name, t.state,
                t.result,
            ])
        }
        return table.lines() + ["", "\(timers.count) task\(timers.count == 1 ? "" : "s") listed."]
    }

    /// LEFT: the time to the next run, or how overdue one already due is; `now` within a second either way (a slot
    /// firing at this instant said `overdue 0s`, one a few milliseconds ahead `0s`).
    static func left(next: Int64, now: Int64) -> String {
        if next > now - 1000 && next < now + 1000 { return "now" }
        return next > now ? TimeText.span(milliseconds: next - now, finest: .seconds)
                          : "overdue " + TimeText.span(milliseconds: now - next, finest: .seconds)
    }

    /// PASSED: the time since the last run started; a start more than a second ahead of `now` (the wall clock stepped
    /// back since) is said so, not as a negative time ago.
    static func passed(last: Int64, now: Int64) -> String {
        last > now + 1000 ? "in the future: clock behind?" : TimeText.span(milliseconds: max(0, now - last), finest: .seconds) + " ago"
    }

    /// One object per task, in the table's order; the fields are documented in docs/task-command.md.
    func json(now: Int64) -> [[String: Any]] {
        timers.map { t in
            [
                "task": t.name, "state": t.state,
                "next": t.next.map { ISO8601.string(fromSeconds: $0 / 1000) } ?? NSNull(), "leftSeconds": t.next.map { TimeText.seconds(milliseconds: $0 - now) } ?? NSNull(),
                "last": t.last.map(ISO8601.string(fromMilliseconds:)) ?? NSNull(), "passedSeconds": t.last.map { TimeText.seconds(milliseconds: now - $0) } ?? NSNull(),
                "lastOutcome": t.outcome ?? NSNull(), "lastExitCode": t.exitCode.flatMap { Int($0) } ?? NSNull(),
                "lastSignal": t.signal.flatMap { Int($0) } ?? NSNull(),
                "lastResult": t.outcome == nil ? NSNull() : t.result,
            ] as [String: Any]
        }
    }
}

extension TaskCommand {
    /// `--list`: the table (or, with `--json`, its objects) of every task in the query view.
    func printTimers(workspace: Workspace, settings: Settings) throws {
        if let warning = SchedulerTimeZone.mismatchWarning(settings, workspace: workspace) { Console.progress(warning) }
        if let warning = ViewLag.warning(workspace) { Console.progress(warning) }
        let view = ViewLocation(settings: settings, workspace: workspace)
        let runsEnded = CrashedRuns.viewMayShowThem(view, workspace: workspace)
        let table = try view.openForReading().map { try TimerTable.read(from: $0, runsEndedByACrash: runsEnded) } ?? TimerTable(timers: [])
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        if json {
            return try Console.say(json: table.json(now: now))
        }
        Console.say(lines: table.lines(now: now, time: TimeText(settings: settings)))
    }
}
