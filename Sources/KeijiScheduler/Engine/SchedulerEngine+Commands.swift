import KeijiCore

extension SchedulerEngine {
    /// Applies a command: validated against the current state, journaled (durable) before anything happens,
    /// then acted on. Returns the command's LSN: the acknowledgement the bus relays to the CLI.
    /// `creating`: a `task.saved` that must not replace a task (``BusRequest/create``); in a cluster the command log
    /// decides (``ClusterDatabase/publish(_:task:binary:creating:)``).
    public func submit(_ event: JournalEntry.Event, creating: Bool = false) async throws -> UInt64 {
        guard phase == .running else {
            throw KeijiError(.conflict, journalFailure.map(JournalFailureStop.refusal) ?? "the scheduler is not running")
        }
        do {
            try CommandValidator.validate(event, against: state, answeringUnchanged: cluster == nil)
        } catch let error as KeijiError where error.code == .notFound && cluster != nil {
            // A task made on another node moments ago (within the poll): its commands are pulled, then checked again.
            await pullCommands()
            try CommandValidator.validate(event, against: state, answeringUnchanged: false)
        }
        if let cluster, event.isClusterCommand { return try await submitToCluster(event, cluster, creating: creating) }
        if creating, case .taskSaved(let definition, _) = event, state.tasks[definition.name] != nil {
            throw KeijiError(.alreadyExists, "task \(definition.name) already exists; use --force to recreate it")
        }
        return try await applyCommand(JournalEntry(at: clock.nowMilliseconds(), event))
    }

    /// Journals a validated command (its time as given: a cluster's nodes all journal a command with the time it
    /// was made, so they derive the same anchors), applies it, and arms or disarms its task.
    func applyCommand(_ entry: JournalEntry) async throws -> UInt64 {
        let lsn = try await record(entries: [entry]).upperBound
        await waitUntilApplied(lsn)
        switch entry.event {
        case .taskSaved(let definition, _): armAfterCommand(definition.name)
        case .taskEnabled(let name), .taskResolved(let name), .taskTriggered(let name): armAfterCommand(name)
        case .taskDisabled(let name), .taskErrored(let name, _): disarm(name)
        case .taskDeleted(let name):
            disarm(name)
            firedSlots[name] = nil
            catchingUp.remove(name)  // a task created again under this name is armed at once, not after this one's catch-ups
            taskLogs.forget(name)  // the CLI removes the log next
        case .taskStopRequested(let name):
            // The seed's "stop": end the current run; the schedule goes on.
            terminateRuns(of: name, because: "stopped on request")
            armAfterCommand(name)
        default: break
        }
        if deferredArming == nil { await flushView() }  // else once the pull is done
        return lsn
    }

    /// Arms `name` now, or once the pull of cluster commands being applied is done (``deferredArming``): a task
    /// saved and then disabled by the next command of the pull must not fire in between.
    private func armAfterCommand(_ name: TaskName) {
        if deferredArming != nil { deferredArming?.insert(name) } else { arm(name) }
    }

    /// `message`: why, as each run's end says it. A run whose dated start the spawn server still holds is withdrawn
    /// (it ends `stopped (never began)`, as at a `--disable`): sent on, it began, and a program that handles SIGTERM
    /// began its work, only to be stopped. One whose start is being made as this is asked is stopped once it began.
    func terminateRuns(of name: TaskName, because message: String) {
        for run in runs.values where run.task == name && !run.detached {
            run.handle.cancelStart(.task(message: RunEnd.notBegunMessage("a stop was requested")))
            run.handle.terminate(reason: .stopped, grace: run.graceSeconds, because: message)
        }
    }
}
