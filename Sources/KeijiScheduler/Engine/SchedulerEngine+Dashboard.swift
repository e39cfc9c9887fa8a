import Foundation
import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What the dashboard's pages show, read from the engine in one actor hop: the applied state (a copy-on-write
/// copy), which tasks have runs going, and when each armed task fires next.
public struct DashboardSnapshot: Sendable {
    public var state: SchedulerState
    public var runningCounts: [TaskName: Int]
    /// Milliseconds since the epoch; no entry for a task that will not fire (disabled, in error, a fired one-shot).
    public var nextFireMs: [TaskName: Int64]
    public var recoveryReport: RecoveryReport?
    public var nowMs: Int64
    public var timeZone: TimeZone
    /// This node and the live nodes as of the last heartbeat (empty on SQLite).
    public var nodeName: String
    public var liveNodes: [String]
    public var clustered: Bool

    /// The word `keiji task --list` prints in its STATE column.
    public func stateWord(_ name: TaskName) -> String {
        guard let task = state.tasks[name] else { return "deleted" }
        if (runningCounts[name] ?? 0) > 0 { return "running" }
        return task.pendingTriggers > 0 ? "queued" : task.isError ? "error" : task.isDisabled ? "disabled" : "scheduled"
    }
}

/// The journal and process facts of the dashboard's system page, read off the cooperative pool.
public struct SystemFacts: Sendable {
    public var schedulerPID: Int32
    public var busPID: Int32?
    public var journal: JournalStats?
    public var journalError: String?
    public var durableLSN: UInt64
}

extension SchedulerEngine {
    public func dashboardSnapshot() -> DashboardSnapshot {
        let now = clock.nowMilliseconds()
        var next: [TaskName: Int64] = [:]
        for (name, task) in state.tasks where !task.isDisabled && !task.isError {
            if task.pendingTriggers > 0 { next[name] = now; continue }
            let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
            if let slot = calculator.nextSlot(after: cursor(of: name, task)) {
                next[name] = task.fireTimeMilliseconds(slot: slot, calculator: calculator)
            }
        }
        return DashboardSnapshot(state: state, runningCounts: activeRunCounts, nextFireMs: next, recoveryReport: recoveryReport,
                                 nowMs: now, timeZone: timeZone, nodeName: configuration.settings.nodeName,
                                 liveNodes: slotPreference.nodes, clustered: cluster != nil)
    }

    /// The LSN of the last applied record: it moves whenever a run starts or finishes or a command lands
    /// (the dashboard's live updates watch it).
    public var appliedLSN: UInt64 { state.lastLSN }

    /// The size of a task's active log file in bytes (0 when there is none): one `stat`.
    public func logSize(of name: TaskName) -> Int64 {
        Int64(FileSystem.size(of: configuration.workspace.taskLogFile(name)) ?? 0)
    }

    /// The last `count` lines of a task's log, read on the background thread (file reads block).
    public func logTail(of name: TaskName, lines count: Int) async -> [String] {
        let file = LogFile(task: name, workspace: configuration.workspace, settings: configuration.settings)
        return (try? await background.run { try file.lastLines(count) }) ?? []
    }

    /// Journal statistics (`keiji journal stats`) and the services' pids, read on the background thread.
    public func systemFacts() async -> SystemFacts {
        let directory = journal.contents
        let pidFile = configuration.workspace.pidFile("bus")
        var facts = SystemFacts(schedulerPID: getpid(), durableLSN: journal.durableLSN)
        do {
            let (stats, bus) = try await background.run { () -> (JournalStats, Int32?) in
                // `<pid> <start time>`, as `keiji system --start` writes it.
                let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { $0.split(whereSeparator: \.isWhitespace).first }.flatMap { Int32($0) }
                return (try directory.stats(), pid)
            }
            facts.journal = stats
            facts.busPID = bus
        } catch {
            facts.journalError = "\(error)"
        }
        return facts
    }

    /// The cluster's nodes from the database (through the cluster link's own thread); nil on SQLite or when
    /// the database does not answer.
    public func clusterNodes() async -> [ClusterNode]? {
        guard let cluster else { return nil }
        return await cluster.nodes()
    }
}
