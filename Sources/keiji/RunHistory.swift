import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji task --runs --name=X`: the task's latest runs from the query view, newest first (the last made, whatever
/// the wall clock said): slot, start, duration, lateness, result, attempt, trigger and node.
struct RunHistory {
    struct Run {
        var runID: String
        /// Seconds: the slot the run was for; nil for a run started by hand.
        var slot: Int64?
        /// Milliseconds; nil for a run that never started (a missed slot).
        var start: Int64?
        var end: Int64
        var latenessMs: Int64?
        var outcome: String
        var exitCode: String?
        var signal: String?
        var attempt: String
        var trigger: String
        /// The scheduler that ran it (`NODE_NAME`).
        var node: String
        /// Why it ended as it did (a failure's status and thrown message, a stop's reason); nil when it succeeded.
        var message: String?

        /// Journaled as started within the firing lead, it ended before its process began (``RunEnd/neverBegan(message:)``):
        /// the view's start is when it was journaled, not when anything ran.
        var neverBegan: Bool { RunEnd.neverBegan(message: message) }
        /// When its process began (nil: it never did).
        var began: Int64? { neverBegan ? nil : start }
        var lateness: Int64? { neverBegan ? nil : latenessMs }
        /// The view's `DurationMs`: how long it ran (``RunSummary/durationMs``).
        var durationMs: Int64?
        var result: String { RunResultText.text(outcome: outcome, exitCode: exitCode, signal: signal, message: message) }
    }

    let runs: [Run]

    static func read(_ task: TaskName, limit: Int, from database: any ViewDatabase) throws -> RunHistory {
        let rows = try database.runs(["RunId", "SlotTime", "StartTime", "EndTime", "LatenessMs", "Outcome", "ExitCode", "Signal", "Attempt", "Trigger", "Node",
                                      "Message", "DurationMs"],
                                     of: task.rawValue, limit: limit)
        let runs = rows.map { row in
            Run(runID: row[0] ?? "", slot: row[1].flatMap(ISO8601.seconds(from:)), start: row[2].flatMap(ISO8601.milliseconds(from:)),
                end: row[3].flatMap(ISO8601.milliseconds(from:)) ?? 0, latenessMs: row[4].flatMap { Int64($0) }, outcome: row[5] ?? "",
                exitCode: row[6], signal: row[7], attempt: row[8] ?? "", trigger: row[9] ?? "", node: row[10] ?? "", message: row[11],
                durationMs: row[12].flatMap { Int64($0) })
        }
        return RunHistory(runs: runs)
    }

    func lines(time: TimeText) -> [String] {
        var table = TextColumns(["SLOT", "START", "DURATION", "LATE", "RESULT", "ATTEMPT", "TRIGGER", "NODE"])
        for run in runs {
            table.rows.append([
                run.slot.map { time.instant(milliseconds: $0 * 1000) } ?? "-", run.began.map(time.instant) ?? "-",
                // An interrupted run's end is when the next start recorded it: the process ran at most that long.
                run.durationMs.map { (run.outcome == "interrupted" ? "≤" : "") + TimeText.span(milliseconds: $0, finest: .milliseconds) } ?? "-",
                run.lateness.map { TimeText.span(milliseconds: $0, finest: .milliseconds) } ?? "-",
                run.result, run.attempt, run.trigger, run.node,
            ])
        }
        return table.lines() + ["", "\(runs.count) run\(runs.count == 1 ? "" : "s") listed."]
    }

    /// One object per run, newest first; the fields are documented in docs/task-command.md.
    func json() -> [[String: Any]] {
        runs.map { run in
            [
                "runId": run.runID, "slot": run.slot.map(ISO8601.string(fromSeconds:)) ?? NSNull(),
                "start": run.began.map(ISO8601.string(fromMilliseconds:)) ?? NSNull(), "end": ISO8601.string(fromMilliseconds: run.end),
                "durationSeconds": run.durationMs.map(TimeText.seconds(milliseconds:)) ?? NSNull(),
                "latenessSeconds": run.lateness.map(TimeText.seconds(milliseconds:)) ?? NSNull(),
                "outcome": run.outcome, "exitCode": run.exitCode.flatMap { Int($0) } ?? NSNull(), "signal": run.signal.flatMap { Int($0) } ?? NSNull(),
                "result": run.result,
                "attempt": Int(run.attempt) ?? NSNull(), "trigger": run.trigger, "node": run.node, "message": run.message ?? NSNull(),
            ] as [String: Any]
        }
    }
}

extension TaskCommand {
    /// `--runs`: the task's latest `--limit` runs from the query view (or, with `--json`, their objects).
    func printRuns(_ task: TaskName, workspace: Workspace, settings: Settings) throws {
        guard let database = try ViewLocation(settings: settings, workspace: workspace).openForReading(),
            try !database.taskModels(["Name"], where: .name(task.rawValue)).isEmpty
        else { throw CLIError("no task named \(task)") }
        let history = try RunHistory.read(task, limit: limit ?? 20, from: database)
        if json {
            return try Console.say(json: history.json())
        }
        Console.say(lines: history.lines(time: TimeText(settings: settings)))
    }
}
