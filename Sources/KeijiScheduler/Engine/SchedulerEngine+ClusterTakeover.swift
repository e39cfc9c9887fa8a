import Foundation
import KeijiCore

extension SchedulerEngine {
    /// A claim older than this when its statement returns (the process was paused: SIGSTOP, a suspended VM)
    /// is checked again before its run starts, well before another node may take it over (after
    /// ``ClusterDatabase/heartbeatTimeoutSeconds``): a paused node that wakes up never acts on a handed-over slot.
    static let claimDeadline: Duration = .seconds(ClusterDatabase.heartbeatTimeoutSeconds / 2)

    /// Takes over what nodes that died or stopped left unfinished (called after each heartbeat) and starts what
    /// each slot's task policy says, one run after another per task; every decision goes in `recovery.json`.
    /// The claims of nodes whose heartbeat stopped are taken only once this node's own has gone on without a break
    /// for as long (see ``ClusterHeartbeat/hasBeatenWithoutABreak(for:)``); those of stopped nodes at once.
    func takeOverAbandonedSlots() async {
        guard let cluster, phase == .running else { return }
        let lostNodes = await cluster.heartbeat.hasBeatenWithoutABreak(for: .seconds(ClusterDatabase.heartbeatTimeoutSeconds))
        guard let taken = await cluster.takeOver(lostNodes: lostNodes), !taken.isEmpty else { return }
        // A task made on another node just before it died may not have reached this one yet (commands are polled).
        if !taken.allSatisfy(knowsTask) { await pullCommands() }
        let (queues, decided) = decide(taken, cluster)
        await cluster.sendFinishes()
        recoveryReport?.cluster?.append(decided)
        saveRecoveryReport()
        queueCatchUps(queues)
    }

    /// What to do with each slot taken over: a slot of a node that stopped cleanly never began (a stop ends
    /// every run it began), so it runs now; a slot of a node that died was perhaps interrupted, so it is re-run
    /// only as its task's `rerunInterrupted` policy says, and at most ``interruptionLimit`` times in all.
    /// A slot not run is marked finished at once: nobody is to take it over again.
    /// - Returns: the runs to start, by task, in slot order, and the decisions for the report.
    func decide(_ taken: [TakenOverSlot], _ cluster: ClusterLink) -> (runs: [(TaskName, [RecoveryRun])], decided: [RecoveryReport.TakenOverRun]) {
        let now = clock.nowMilliseconds()
        var queues: [TaskName: [RecoveryRun]] = [:]
        var decided: [RecoveryReport.TakenOverRun] = []
        var notRun: [ClaimedSlot] = []
        for slot in taken.sorted(by: { ($0.task, $0.slot) < ($1.task, $1.slot) }) {
            let action: String
            var run: RecoveryRun?
            if let name = try? TaskName(slot.task), let task = state.tasks[name] {
                if task.isDisabled || task.isError {
                    action = task.isDisabled ? "not run (task disabled)" : "not run (task in error)"
                } else if slot.fromStoppedNode {
                    action = "run (it never began: \(slot.from) stopped)"
                    run = RecoveryRun(task: name, slot: slot.slot, trigger: .catchUp, attempt: 1, interruptions: nil)
                } else if !task.definition.policy.rerunInterrupted {
                    action = "not re-run (policy; \(slot.from) died during it or just before)"
                } else if slot.interruptions >= Self.interruptionLimit {
                    action = "not re-run (interrupted \(slot.interruptions) times)"
                } else {
                    action = "re-run (\(slot.from) died during it or just before)"
                    run = RecoveryRun(task: name, slot: slot.slot, trigger: .recovery, attempt: 1, interruptions: slot.interruptions)
                }
            } else {
                action = "not run (task deleted)"
            }
            decided.append(.init(task: slot.task, slot: slot.slot, from: slot.from, at: now, action: action))
            if let run {
                queues[run.task, default: []].append(run)
            } else {
                notRun.append(ClaimedSlot(task: slot.task, slot: slot.slot))
            }
        }
        cluster.finished(notRun)
        // Decided here: a slot also waiting among those a database outage kept from being claimed is not decided
        // again by its catch-up policy (which would run it a second time, or finish the claim its re-run needs).
        forgetUnclaimed(taken.map { ClaimedSlot(task: $0.task, slot: $0.slot) })
        let started = queues.values.reduce(0) { $0 + $1.count }
        let sources = Set(taken.map(\.from)).sorted().joined(separator: ", ")
        note("cluster: took over \(taken.count) unfinished slots of \(sources); \(started) run here, the others not (recovery.json says why)")
        return (queues.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, decided)
    }

    /// The task of `slot` as this node knows it (nil for one it does not know: a task made on another node
    /// reaches it with the commands).
    func task(of slot: TakenOverSlot) -> TaskState? {
        (try? TaskName(slot.task)).flatMap { state.tasks[$0] }
    }

    func knowsTask(_ slot: TakenOverSlot) -> Bool { task(of: slot) != nil }

    /// Whether this node knows the task of `slot` enabled and not in error.
    func isEnabledHere(_ slot: TakenOverSlot) -> Bool {
        task(of: slot).map { !$0.isDisabled && !$0.isError } ?? false
    }

    /// Writes the report to `~/.keiji/recovery.json` (what `keiji system --status` shows).
    func saveRecoveryReport() {
        if let report = recoveryReport, let data = try? JSONEncoder().encode(report) {
            try? FileSystem.writeAtomically(data, to: configuration.workspace.recoveryReportFile)
        }
    }
}
