import KeijiCore

extension SchedulerEngine {
    /// What a start does with this node's own unfinished claims (``resolveOwnClaims(_:rerunning:cluster:)``).
    struct OwnClaimsResolution {
        /// Slots that never began here, to run now.
        var runs: [RecoveryRun] = []
        /// Claims this node took over from another and never began: decided again as takeovers (``decide(_:_:)``).
        var retaken: [TakenOverSlot] = []
        var report: [RecoveryReport.OwnClaimRun] = []
    }

    /// Settles this node's unfinished claims by its journal, the node's truth. A claim is made before its
    /// `run.started` is journaled, and marked finished within ``ClusterLink/finishDelay`` after `run.finished`;
    /// a crash in either gap (or a stop that could not reach the database) leaves a claim nothing else settles.
    /// Left alone, a slot claimed just before a crash ran nowhere (no other node claims a held slot), and a
    /// claim whose run had ended was taken over as interrupted when this node was later down past the lease,
    /// and its slot run again.
    ///
    /// - A slot whose run began here (its run is among the task's recent runs) is marked finished.
    /// - A slot that never began (claimed here and after the task's last journaled slot, or stopped before its
    ///   spawn) runs now, and the task's catch-up plan counts from after it.
    /// - A slot taken over from another node and not begun here is decided again as that takeover (its slot is
    ///   often after the last journaled one, but the other node's run may have begun).
    /// - Anything else is older than the task's last journaled slot and not among its recent runs: marked
    ///   finished (its run, if any, ended long ago).
    ///
    /// Called once the interrupted runs are journaled (each is then among its task's recent runs) and before the
    /// catch-up plans; slots in `rerunning` (interrupted runs re-run now) keep their claims.
    func resolveOwnClaims(_ claims: [OwnClaim], rerunning: Set<ClaimedSlot>, cluster: ClusterLink) -> OwnClaimsResolution {
        var resolution = OwnClaimsResolution()
        var settled: [ClaimedSlot] = []
        for claim in claims {
            let key = ClaimedSlot(task: claim.task, slot: claim.slot)
            guard !rerunning.contains(key) else { continue }
            let action: String
            var settles = true
            if let name = try? TaskName(claim.task), let task = state.tasks[name] {
                let journaled = task.recentRuns.last { $0.slot == claim.slot }
                let neverBegan: String? = if let journaled {
                    // What `journalAndSpawn` records when a stop comes between the journal and the spawn.
                    journaled.outcome == RunOutcome.stopped.rawValue && journaled.latenessMs == nil ? "the scheduler stopped before its spawn" : nil
                } else if claim.takenFrom == nil, claim.slot > task.lastSlot ?? Int64.min {
                    "claimed just before the scheduler died, before its run.started"
                } else {
                    nil
                }
                if let neverBegan, task.isDisabled || task.isError {
                    action = "not run (\(task.isDisabled ? "task disabled" : "task in error"); it never began: \(neverBegan))"
                } else if let neverBegan {
                    action = "run (it never began: \(neverBegan))"
                    settles = false
                    resolution.runs.append(RecoveryRun(task: name, slot: claim.slot, trigger: .catchUp, attempt: 1, interruptions: nil))
                    firedSlots[name] = max(firedSlots[name] ?? claim.slot, claim.slot)
                } else if let journaled {
                    action = "marked finished (its run is journaled here: \(journaled.outcome))"
                } else if let from = claim.takenFrom {
                    action = "decided again as a takeover from \(from) (it never began here)"
                    settles = false
                    // Only a node that died adds an interruption: none means every holder stopped before it began.
                    resolution.retaken.append(TakenOverSlot(task: claim.task, slot: claim.slot, from: from, fromStoppedNode: claim.interruptions == 0,
                                                            interruptions: claim.interruptions))
                } else {
                    action = "marked finished (before the task's last journaled slot, and not among its recent runs)"
                }
            } else {
                action = "marked finished (task deleted)"
            }
            resolution.report.append(.init(task: claim.task, slot: claim.slot, action: action))
            if settles { settled.append(key) }
        }
        cluster.finished(settled)
        return resolution
    }
}
