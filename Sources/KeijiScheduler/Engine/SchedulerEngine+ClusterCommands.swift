import KeijiCore

extension SchedulerEngine {
    /// What became of a command pulled from the cluster: its local LSN, or why it was skipped.
    enum ClusterCommandResult {
        case applied(UInt64)
        case skipped(any Error)
    }

    /// How often a node looks for commands published by the others (a node's own are applied at once).
    static let commandPollInterval: Duration = .seconds(1)

    /// A command in a cluster: published to the database first, then applied here in the database's order,
    /// with every command published before it, so all nodes apply the same sequence. Returns its local LSN.
    /// `creating`: see ``submit(_:creating:)``.
    func submitToCluster(_ event: JournalEntry.Event, _ cluster: ClusterLink, creating: Bool = false) async throws -> UInt64 {
        let entry = JournalEntry(at: clock.nowMilliseconds(), event)
        let seq = try await cluster.publish(entry, creating: creating)
        await pullCommands()
        switch recentCommandResults[seq] {
        case .applied(let lsn): return lsn
        case .skipped(let error): throw error
        case nil: throw KeijiError(.database, "command \(seq) was published to the cluster's database but could not be read back yet; it will be applied when the database answers")
        }
    }

    /// Applies every command published since the last pull, in `seq` order, one pull at a time (a submit's pull
    /// starts after the ones before it, so it sees its own command).
    func pullCommands() async {
        let previous = commandPull
        let pull = Task { [weak self] in
            await previous?.value
            await self?.pullCommandsNow()
        }
        commandPull = pull
        await pull.value
    }

    /// Applies what the log has after ``appliedCommandSeq``; the tasks are armed, and the view flushed, once
    /// after the whole pull (a node catching up on a thousand commands flushes once, not a thousand times).
    private func pullCommandsNow() async {
        guard let cluster, phase != .stopped, phase != .failed else { return }
        await publishErrors(cluster)
        let before = appliedCommandSeq
        await asOnePull { await applyPulledCommands(cluster) }
        if appliedCommandSeq != before { await flushView() }
    }

    /// Runs `apply`, which applies commands one after another (``applyCommand(_:)``), as one pull: none of them
    /// flushes the view, and the tasks they arm are armed once it is done (see ``deferredArming``), each from the
    /// latest slot the cluster has claimed of it (a task made or changed on another node while this one was down
    /// has run there: those slots are not this node's to catch up or record missed).
    func asOnePull(_ apply: () async throws -> Void) async rethrows {
        deferredArming = []
        do {
            try await apply()
        } catch {
            await armAfterPull()
            throw error
        }
        await armAfterPull()
    }

    private func armAfterPull() async {
        let names = deferredArming ?? []
        deferredArming = nil
        if let passed = await skipSlotsClaimedElsewhere(of: Array(names)) {
            note("cluster: \(passed) slots of tasks changed on other nodes had run there before this node had the change")
        }
        for name in names.sorted() { arm(name) }
    }

    private func applyPulledCommands(_ cluster: ClusterLink) async {
        while let batch = await cluster.commands(after: appliedCommandSeq), !batch.isEmpty {
            for (seq, bytes, binary) in batch {
                let result: ClusterCommandResult
                do {
                    var entry = try JournalEntry.decode(bytes)
                    guard entry.event.isClusterCommand else { throw KeijiError(.conflict, "\(entry.typeName) is not a cluster command") }
                    if case .taskSaved(let definition, let taskID) = entry.event {
                        let local = definition.localized(to: configuration.workspace)
                        try? FileSystem.createDirectory(local.directory)
                        entry.event = .taskSaved(local, taskID: taskID)
                    }
                    try CommandValidator.validate(entry.event, against: state, answeringUnchanged: false)
                    if isInEffect(entry.event) {
                        // This node's own command made offline (journaled by the CLI, then read back here), or one
                        // applied before a crash: journaling it again would change nothing.
                        result = .applied(journal.lastLSN)
                    } else {
                        // A Swift task's binary is installed (verified) before its definition applies.
                        if let binary, case .taskSaved(let definition, _) = entry.event, case .binary(let path) = definition.action {
                            guard let installed = await cluster.downloads.install(binary, at: path) else {
                                await cluster.setAppliedSeq(appliedCommandSeq)
                                return  // the database failed: this command is applied at a later poll, never skipped
                            }
                            if case .downloaded(let size) = try installed.get() {
                                note("cluster: task \(definition.name)'s binary \(binary.prefix(12))… downloaded (\(size) bytes, SHA-256 verified) to \(path)")
                            }
                        }
                        result = .applied(try await applyCommand(entry))
                        clusterCommandsApplied += 1
                        if case .taskDeleted(let name) = entry.event { removeFilesOfDeleted(name) }
                    }
                } catch {
                    // Mostly a command applied before a crash and read again (a delete of a deleted task).
                    note("cluster: command \(seq) skipped: \(error)")
                    result = .skipped(error)
                }
                appliedCommandSeq = seq
                recentCommandResults[seq] = result
                recentCommandResults[seq - 1000] = nil
            }
            await cluster.setAppliedSeq(appliedCommandSeq, journalLSN: journal.lastLSN)
        }
    }

    /// A delete from the command log removes this node's own copies of what the task left here, its logs and its
    /// installed binary: the CLI that made the delete removes only its own node's, and the others kept theirs.
    private func removeFilesOfDeleted(_ name: TaskName) {
        let workspace = configuration.workspace
        do {
            try LogFile(task: name, workspace: workspace, settings: configuration.settings).removeAll()
            try FileSystem.remove(workspace.executable(for: name))
        } catch {
            note("cluster: task \(name) is deleted, but its logs or binary here could not be removed: \(error)")
        }
    }

    /// Publishes the `task.errored` of the tasks this node's runs put in error (``unpublishedErrors``), so that
    /// the other nodes stop firing them too; each is applied here as in effect already. One no longer in error here
    /// (resolved or saved since) is dropped; one the database refuses is tried again at the next pull.
    private func publishErrors(_ cluster: ClusterLink) async {
        for (name, entry) in unpublishedErrors.sorted(by: { $0.key < $1.key }) {
            guard state.tasks[name]?.isError == true else {
                unpublishedErrors[name] = nil
                continue
            }
            do {
                _ = try await cluster.publish(entry)
                unpublishedErrors[name] = nil
            } catch {
                if errorPublishFailuresNoted.insert(name).inserted {
                    note("cluster: task \(name)'s error could not be published yet (the other nodes may still fire it; tried again each second): \(error)")
                }
                return
            }
            errorPublishFailuresNoted.remove(name)
        }
    }

    /// Queues for ``publishErrors(_:)`` the tasks in error here by a run of this node (not by a refused record, which
    /// is this journal's own damage) whose error the command log does not have as their latest command: put in error
    /// by this start's recovery (a slot interrupted too often), or by a run that ended as the node stopped or died
    /// before its publish. Unpublished, they stayed armed on the other nodes. Called at start, after the first pull.
    func queueErrorsNotInTheLog() async {
        guard let cluster else { return }
        let inError = state.tasks.filter { $0.value.isError && $0.value.errorText.hasPrefix("[ task error ]") }
        guard !inError.isEmpty, let latest = await cluster.latestCommands(of: Array(inError.keys)) else { return }
        for (name, task) in inError {
            if case .taskErrored = latest[name.rawValue]?.event { continue }
            unpublishedErrors[name] = JournalEntry(at: clock.nowMilliseconds(), .taskErrored(name, errorText: task.errorText))
        }
        if !unpublishedErrors.isEmpty { await pullCommands() }  // publishes them first
    }

    /// Publishes the tasks this node had before it joined the cluster (made while `DB_URL` was SQLite), so they
    /// reach every node: each as a save journaled at its anchor's time (so every node derives the same anchor
    /// and phase, as for a task made in the cluster), then a disable if it is disabled. A name the command log
    /// already knows is the cluster's: its definition applies here when the log is pulled.
    /// The latest slot each ran or recorded missed here is claimed, finished, first: a node that learns of the task
    /// then passes over the slots up to it (``skipSlotsClaimedElsewhere(of:)``). Counted from the task's anchor,
    /// they followed its catch-up policy there, and slots this node had run ran again.
    func publishTasksMadeBeforeJoining() async {
        guard let cluster, !state.tasks.isEmpty, let known = await cluster.taskNamesInCommands() else { return }
        var published: [String] = []
        var theClusters: [String] = []
        let handled = state.tasks.compactMap { name, task in
            known[name.rawValue] == nil ? task.lastSlot.map { ClaimedSlot(task: name.rawValue, slot: $0) } : nil
        }
        if !handled.isEmpty {
            if let held = await cluster.claim(handled) {
                cluster.finished(Array(held.all))
                await cluster.sendFinishes()
            } else {
                note("cluster: the latest slots run here of the tasks made before this node joined could not be claimed; "
                     + "the other nodes catch their passed slots up by each task's policy")
            }
        }
        for (name, task) in state.tasks.sorted(by: { $0.key < $1.key }) {
            if let publishedHere = known[name.rawValue] {
                if !publishedHere && appliedCommandSeq == 0 { theClusters.append(name.rawValue) }
                continue
            }
            let anchoredAt = TimeArithmetic.sum(TimeArithmetic.product(task.anchor, 1000), task.phaseMilliseconds)
            var entries = [JournalEntry(at: anchoredAt, .taskSaved(task.definition, taskID: task.taskID))]
            if task.isDisabled { entries.append(JournalEntry(at: task.updatedAt, .taskDisabled(name))) }
            do {
                for entry in entries { _ = try await cluster.publish(entry) }
                published.append(name.rawValue)
            } catch {
                note("cluster: task \(name), made before this node joined, could not be published (it stays local until the next start): \(error)")
            }
        }
        if !published.isEmpty {
            note("cluster: published \(published.count) tasks made before this node joined: \(published.prefix(20).joined(separator: ", "))")
        }
        // Of those, the ones with a task id no save in the log has were made here; the others are the cluster's, applied
        // here before under another NODE_NAME or by a journal whose position was reset (they were called made here).
        if !theClusters.isEmpty, let ids = await cluster.savedTaskIDs(of: theClusters) {
            theClusters.removeAll { name in
                (try? TaskName(name)).flatMap { state.tasks[$0] }.map { ids[name]?.contains($0.taskID) == true } ?? true
            }
        }
        if !theClusters.isEmpty {
            note("cluster: tasks \(theClusters.prefix(20).joined(separator: ", ")) were made here before joining and also exist in the cluster: "
                 + "the cluster's definitions apply")
        }
    }

    /// Whether `event` would change nothing: the same definition saved under the same id, a disable of a
    /// disabled task, an enable of an enabled one.
    private func isInEffect(_ event: JournalEntry.Event) -> Bool {
        switch event {
        case .taskSaved(let definition, let taskID):
            guard let task = state.tasks[definition.name] else { return false }
            return task.taskID == taskID && task.definition == definition
        case .taskDisabled(let name): return state.tasks[name]?.isDisabled == true
        case .taskEnabled(let name): return state.tasks[name].map { !$0.isDisabled } ?? false
        case .taskErrored(let name, _): return state.tasks[name]?.isError == true  // the publisher's own, mostly
        default: return false
        }
    }

    /// Polls for the other nodes' commands (LISTEN/NOTIFY would only make it sooner; a poll is what makes it sure).
    func pollCommandsPeriodically() async {
        while (try? await Task.sleep(for: Self.commandPollInterval)) != nil {
            await pullCommands()
        }
    }
}

extension SchedulerEngine {
    /// Unclaimed slots kept while the database is away (a day of 1,000 tasks × 1 s would be 86 million).
    static let unclaimedSlotLimit = 100_000

    /// Keeps `firing`, whose claim the database did not answer, for ``retryUnclaimedSlots()``.
    func rememberUnclaimed(_ firing: Firing, afresh: Bool) {
        guard let slot = firing.slot, unclaimedSlotCount + unclaimedOwedRuns.count < Self.unclaimedSlotLimit else { return }
        if firing.trigger == .retry || firing.trigger == .recovery {
            unclaimedOwedRuns.append(RecoveryRun(task: firing.task, slot: slot, trigger: firing.trigger, attempt: firing.attempt,
                                                 interruptions: firing.interruptions, claimsAfresh: afresh))
            return
        }
        unclaimedSlots[firing.task, default: []].append(slot)
        unclaimedSlotCount += 1
        if !afresh { unclaimedSlotsNotAfresh.insert(ClaimedSlot(task: firing.task.rawValue, slot: slot)) }
    }

    /// Drops `slots` from those this node could not claim (a takeover has decided them).
    func forgetUnclaimed(_ slots: [ClaimedSlot]) {
        if !unclaimedOwedRuns.isEmpty {
            let decided = Set(slots)
            unclaimedOwedRuns.removeAll { $0.claimedSlot.map(decided.contains) ?? false }
        }
        guard !unclaimedSlots.isEmpty else { return }
        unclaimedSlotsNotAfresh.subtract(slots)
        for slot in slots {
            guard let name = try? TaskName(slot.task), let waiting = unclaimedSlots[name] else { continue }
            let left = waiting.filter { $0 != slot.slot }
            unclaimedSlotCount -= waiting.count - left.count
            unclaimedSlots[name] = left.isEmpty ? nil : left
        }
    }

    /// The database answers again: the slots this node could not claim meanwhile are claimed now, as a restart
    /// would treat slots missed while down: by each task's catch-up policy (`skip`: none, `once`: the latest,
    /// `all`: up to its limit), one after another. Slots another node ran meanwhile are held by it and not run.
    /// The others are finished where this node holds them (a catch-up's slot, claimed before the outage): left
    /// unfinished, such a claim was taken over once the node stopped or died, and run again.
    /// A slot whose firing did not claim afresh is not claimed afresh now: a slot this node took over (whose run's
    /// claim met the outage) comes back as taken over, and a fresh claim would drop it as the takeover's to run.
    /// The slots the policy gives up are journaled missed (downtime), as a restart's, unless another node ran them.
    /// Retries and re-runs are claimed again as they were (``unclaimedOwedRuns``), ahead of their task's catch-ups:
    /// brought back by the catch-up policy, a retry came back as a first attempt, or not at all (`skip`), and the
    /// failure it followed was never final. The overlap policy still applies to them.
    func retryUnclaimedSlots() async {
        guard phase == .running, !unclaimedSlots.isEmpty || !unclaimedOwedRuns.isEmpty else { return }
        let (pending, notAfresh) = (unclaimedSlots, unclaimedSlotsNotAfresh)
        let owed = Dictionary(grouping: unclaimedOwedRuns, by: \.task)
        unclaimedSlots = [:]
        unclaimedSlotCount = 0
        unclaimedSlotsNotAfresh = []
        unclaimedOwedRuns = []
        var queues: [(TaskName, [RecoveryRun])] = []
        var dropped: [ClaimedSlot] = []
        var givenUp: [TaskName: [Int64]] = [:]
        var claiming = 0, total = 0
        for name in Set(pending.keys).union(owed.keys).sorted() {
            let sorted = Array(Set(pending[name] ?? [])).sorted()
            total += sorted.count
            var chosen: [Int64] = []
            if let task = state.tasks[name], !task.isDisabled, !task.isError, let latest = sorted.last {
                chosen = switch task.definition.policy.catchUp {
                case .skip: []
                case .once: [latest]
                case .all: Array(sorted.suffix(task.definition.policy.catchUpLimit))
                }
                givenUp[name] = Array(sorted.dropLast(chosen.count))  // not for a task disabled meanwhile: its slots are not missed
            }
            dropped += sorted.dropLast(chosen.count).map { ClaimedSlot(task: name.rawValue, slot: $0) }  // chosen: the latest ones
            claiming += chosen.count
            // The task's owed runs first, then its catch-ups, one after another (a run of a skip task going on when
            // they are due would make them overlaps, and dropped).
            let runs = (owed[name] ?? []) + chosen.map { slot in
                RecoveryRun(task: name, slot: slot, trigger: .catchUp, attempt: 1, interruptions: nil,
                            claimsAfresh: !notAfresh.contains(ClaimedSlot(task: name.rawValue, slot: slot)))
            }
            if !runs.isEmpty { queues.append((name, runs)) }
        }
        cluster?.finished(dropped)
        let owedCount = owed.values.reduce(0) { $0 + $1.count }
        note("cluster: the database answers again; of the \(total) slots this node could not claim meanwhile, \(claiming) are claimed now "
             + "(each task's catch-up policy; the ones another node ran stay its own)"
             + (owedCount > 0 ? "; \(owedCount) retries and re-runs whose claims it did not answer are claimed again" : ""))
        queueCatchUps(queues)
        await recordGivenUp(givenUp)
    }

    /// Journals the slots `givenUp` by their catch-up policy that ran nowhere missed for downtime, one record per
    /// unbroken stretch of slots: those no node held, which this node then claims (finished) and wins, and those
    /// this node holds with no run of them in its journal (slots it took over, whose claims met the outage); those
    /// another node holds ran there, or are its to record. Unrecorded, they were in no journal, no view and no
    /// report; recorded without the claim, every node recorded the same slots (each had fired them meanwhile).
    private func recordGivenUp(_ givenUp: [TaskName: [Int64]]) async {
        let slots = givenUp.flatMap { name, slots in slots.map { ClaimedSlot(task: name.rawValue, slot: $0) } }
        guard let cluster, !slots.isEmpty, let holders = await cluster.holders(of: slots) else { return }
        var mine = Set(slots.filter { holders[$0] == cluster.node })
        let unheld = slots.filter { holders[$0] == nil }
        if !unheld.isEmpty {
            guard let won = await cluster.claim(unheld) else { return }  // the database failed again: recorded by none
            cluster.finished(Array(won.all))
            mine.formUnion(won.all)
        }
        var missed: [RunMissed] = []
        for (name, slots) in givenUp.sorted(by: { $0.key < $1.key }) {
            guard let task = state.tasks[name] else { continue }
            let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
            let ranHere = Set(task.recentRuns.compactMap(\.slot))
            var stretch: [Int64] = []
            for slot in slots {
                guard mine.contains(ClaimedSlot(task: name.rawValue, slot: slot)), !ranHere.contains(slot) else { continue }
                if let last = stretch.last, calculator.nextSlot(after: last) != slot {
                    missed.append(RunMissed(task: name, slot: last, count: stretch.count, reason: .downtime))
                    stretch = []
                }
                stretch.append(slot)
            }
            if let last = stretch.last { missed.append(RunMissed(task: name, slot: last, count: stretch.count, reason: .downtime)) }
        }
        if !missed.isEmpty { _ = await fire([], missed: missed) }
    }
}
