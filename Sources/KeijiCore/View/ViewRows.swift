import Foundation

/// A column the view writes: its name (the seed's, CamelCase) and what it holds. Each back end spells the
/// names and types in its own dialect; the lists below are the one definition of what is written.
public struct ViewColumn: Sendable, Equatable {
    public enum Kind: Sendable { case integer, text }
    public let name: String
    public let kind: Kind

    init(_ name: String, _ kind: Kind = .text) {
        self.name = name
        self.kind = kind
    }
}

/// One `task_models` row: the columns the definition decides, then those runs and commands change.
public struct TaskModelRow: Sendable, Equatable {
    /// Written when the definition is saved (and by rebuilds). `CreatedAt` is kept by later saves.
    public static let definitionColumns: [ViewColumn] = [
        ViewColumn("ID", .integer), ViewColumn("TaskId"), ViewColumn("Name"), ViewColumn("Description"), ViewColumn("Schedule"),
        ViewColumn("ScheduleInfo"), ViewColumn("LogPath"), ViewColumn("Slug"), ViewColumn("Type"), ViewColumn("Executable"),
        ViewColumn("Policy"), ViewColumn("CreatedAt"),
    ]
    /// Rewritten by every flush that touches the task.
    public static let runColumns: [ViewColumn] = [
        ViewColumn("LastExecutionTime"), ViewColumn("NextExecutionTime"), ViewColumn("IsRunning", .integer), ViewColumn("IsQueued", .integer),
        ViewColumn("IsError", .integer), ViewColumn("IsDisabled", .integer), ViewColumn("ErrorTxt"), ViewColumn("UpdatedAt"),
    ]
    public static var columns: [ViewColumn] { definitionColumns + runColumns }
    /// The columns an upsert of an existing row leaves alone: the key, and when the task was created.
    public static let keptOnUpdate: Set<String> = ["Name", "CreatedAt"]

    public var name: String
    /// The task's number (`ID`): nil only for a task from a snapshot older than numbers, which loading numbers.
    public var number: Int64?
    /// In the order of ``definitionColumns``.
    public var definition: [DatabaseValue]
    public var runValues: TaskRunValues

    /// In the order of ``columns``.
    public var values: [DatabaseValue] { definition + runValues.values }
}

/// The run columns of one task (``TaskModelRow/runColumns``), for the narrow update most flushes make.
public struct TaskRunValues: Sendable, Equatable {
    public var name: String
    /// In the order of ``TaskModelRow/runColumns``.
    public var values: [DatabaseValue]
}

/// One `runs` row.
public struct RunRow: Sendable, Equatable {
    public static let columns: [ViewColumn] = [
        ViewColumn("RunId"), ViewColumn("TaskName"), ViewColumn("SlotTime"), ViewColumn("StartTime"), ViewColumn("EndTime"),
        ViewColumn("LatenessMs", .integer), ViewColumn("Outcome"), ViewColumn("ExitCode", .integer), ViewColumn("Signal", .integer),
        ViewColumn("Attempt", .integer), ViewColumn("Trigger"), ViewColumn("Message"), ViewColumn("Node"), ViewColumn("DurationMs", .integer),
    ]
    /// What tells rows apart: a row is an entry of a task's run history (``TaskState/recentRuns``). A `RunId` alone
    /// is not unique: a slot missed by several tasks is `missed-<slot>` in each (when `RunId` was the key, the view
    /// kept one of them), and a run interrupted and then finished is two entries of its task's history.
    public static let keyColumns = ["TaskName", "EndTime", "RunId"]

    public var runID: String
    /// In the order of ``columns``.
    public var values: [DatabaseValue]

    /// - Parameter node: the scheduler that ran it (`NODE_NAME`): in a cluster, the runs of every node share a table.
    init(_ run: RunSummary, task name: TaskName, node: String) {
        runID = run.runID
        values = [
            .text(run.runID), .text(name.rawValue), .optional(run.slot.map(ISO8601.string(fromSeconds:))),
            .optional(run.startedAt.map(ISO8601.string(fromMilliseconds:))), .text(ISO8601.string(fromMilliseconds: run.finishedAt)),
            .optional(run.latenessMs), .text(run.outcome), .optional(run.exitCode.map(Int64.init)),
            .optional(run.signal.map(Int64.init)), .integer(Int64(run.attempt)), .text(run.trigger), .optional(run.message), .text(node),
            .optional(run.durationMs),
        ]
    }
}

/// Turns tasks of a ``SchedulerState`` into view rows. Rows depend on the state alone (and the workspace's
/// paths and `TIME_ZONE`), so a rebuilt view equals a live one, whichever database holds it.
struct ViewRowMaker {
    let workspace: Workspace
    let defaultTimeZone: TimeZone
    /// Tasks with a run in progress, found once per flush rather than by a scan of every run per row.
    let running: Set<TaskName>

    init(workspace: Workspace, defaultTimeZone: TimeZone, state: SchedulerState) {
        self.workspace = workspace
        self.defaultTimeZone = defaultTimeZone
        running = Set(state.activeRuns.values.map(\.start.task))
    }

    /// The columns runs and commands change.
    func runValues(of task: TaskState) -> TaskRunValues {
        TaskRunValues(name: task.definition.name.rawValue, values: [
            .optional(task.lastStartedAt.map(ISO8601.string(fromMilliseconds:))), .optional(nextExecution(of: task).map(ISO8601.string(fromSeconds:))),
            .bool(running.contains(task.definition.name)), .bool(task.isQueued), .bool(task.isError), .bool(task.isDisabled), .text(task.errorText),
            .text(ISO8601.string(fromMilliseconds: task.updatedAt)),
        ])
    }

    /// A whole row: what the definition decides, then ``runValues(of:)``.
    func row(of task: TaskState) -> TaskModelRow {
        let d = task.definition
        let scheduleInfo = (try? String(decoding: StateLoader.snapshotEncoder.encode(d.schedule), as: UTF8.self)) ?? "{}"
        let policy = (try? String(decoding: StateLoader.snapshotEncoder.encode(d.policy), as: UTF8.self)) ?? "{}"
        let number = task.number.map(Int64.init)
        return TaskModelRow(name: d.name.rawValue, number: number, definition: [
            .optional(number), .text(task.taskID), .text(d.name.rawValue), .text(d.description), .text(d.schedule.schedule.displayString), .text(scheduleInfo),
            .text(workspace.taskLogFile(d.name)), .text(d.name.slug), .text(d.schedule.schedule.typeName), .text(d.executableDescription), .text(policy),
            .text(ISO8601.string(fromMilliseconds: task.createdAt)),
        ], runValues: runValues(of: task))
    }

    private func nextExecution(of task: TaskState) -> Int64? {
        // A task in error or disabled does not run until resolved or enabled: it has no next execution.
        guard !task.isDisabled, !task.isError else { return nil }
        let calculator = task.scheduleCalculator(defaultTimeZone: defaultTimeZone)
        return calculator.nextSlot(after: task.lastSlot ?? task.anchor)
    }
}
