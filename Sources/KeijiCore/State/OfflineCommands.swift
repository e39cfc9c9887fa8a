import Foundation
import KeijiJournal

/// Applies a command while no scheduler is running: takes the journal's lock briefly, opens the query view
/// (where `DB_URL` says), checks the command against the replayed state, checkpoints a long replay, publishes the
/// command to the cluster (on PostgreSQL), appends it (durable), brings the view up to date, and closes. A view it
/// cannot open refuses the command before anything is journaled. The scheduler replays it at its next start, so a
/// command is never lost or silently dropped.
///
/// - Throws: ``KeijiError`` with code `.journalHeld` when a scheduler holds the journal: send the command
///   through the bus instead.
public enum OfflineCommands {
    /// Records replayed past which an offline command writes a checkpoint first. The scheduler checkpoints only while
    /// it runs (every 50,000 records, and at a clean stop), and every offline command replays the records after the
    /// latest checkpoint: after a crash up to 50,000, and in a workspace changed offline its whole history (5 tasks
    /// and ~1,300 records: 17–18 ms of CPU a command, 11 ms with this; docs/benchmarks.md).
    public static let checkpointAfterRecords = 256

    @discardableResult
    /// - Parameter creating: a `task.saved` that must not replace a task (`--create` without `--force`), checked
    ///   against the journal: the view the CLI checked first can be a command behind it (a command killed between its
    ///   append and its view update), and a create then replaced a journaled task.
    /// - Parameter repaired: told what opening the journal repaired (a torn tail cut…), before the command is checked,
    ///   so the caller can say so whether the command is then refused or not.
    /// - Parameter viewBehind: told why the view could not be brought up to the journal after the command was
    ///   journaled. The command stands (the scheduler replays it); the next command or start catches the view up.
    public static func submit(_ event: JournalEntry.Event, creating: Bool = false, workspace: Workspace, settings: Settings,
                              options: JournalOptions = JournalOptions(), repaired: ([Repair]) -> Void = { _ in },
                              viewBehind: (String) -> Void = { _ in }) async throws -> UInt64 {
        try await withJournal(of: workspace, options: options, repaired: repaired) { journal in
            let location = ViewLocation(settings: settings, workspace: workspace)
            // Opened without SQLite's page-by-page check, which reads the whole file at every command (see
            // `catchUp` below for damage).
            var opened: (view: QueryView, fresh: Bool)? = try QueryView.openOrReset(location, workspace: workspace,
                                                                                   defaultTimeZone: settings.timeZone, verifying: false)
            var loaded = try StateLoader.load(from: journal)
            // A view ahead of the journal is the one trace of acknowledged records the journal lost: written over, its
            // LSNs would be reused and the trace gone. The scheduler's start reports it and rebuilds the view (the rule is
            // `planCatchUp`'s, which the start applies).
            if let applied = (try? opened!.view.planCatchUp(with: loaded, fresh: opened!.fresh))?.viewWasAheadAt {
                // Opening may have cut a torn tail already (that cut is often what put the view ahead): then files did change.
                let written = journal.recovery.repairs.isEmpty ? "nothing was written"
                    : "the command was not written (opening the journal repaired it, as said above)"
                throw KeijiError(.conflict, RecoveryReport.viewAheadText(view: applied, journal: loaded.state.lastLSN)
                                 + ": \(written); `keiji journal verify` checks the journal, and `keiji system --start` "
                                 + "accepts the loss, rebuilds the view and reports it")
            }
            // No scheduler holds the lock, so nothing runs, whatever open `run.started` a crash left behind.
            var present = loaded.state
            present.activeRuns = [:]
            let inCluster = if case .postgres = settings.database { true } else { false }
            do {
                try CommandValidator.validate(event, against: present, answeringUnchanged: !inCluster)
                if creating, case .taskSaved(let definition, _) = event, present.tasks[definition.name] != nil {
                    throw KeijiError(.alreadyExists, "task \(definition.name) already exists; use --force to recreate it")
                }
            } catch let error as KeijiError where inCluster && error.code == .notFound {
                // The view (shared) may list the task: this node's journal has only the commands it applied while running.
                _ = try? opened!.view.catchUp(with: loaded, fresh: opened!.fresh)
                throw KeijiError(.notFound, error.message + " in this node's journal, which has the cluster's commands only up to its "
                                 + "scheduler's last run: start it (keiji system --start) to apply the others, then try again")
            } catch {
                // Refused, but a view behind the journal is brought up to it: the next read shows what the refusal saw.
                _ = try? opened!.view.catchUp(with: loaded, fresh: opened!.fresh)
                throw error
            }
            if loaded.recordsReplayed >= checkpointAfterRecords, loaded.refused.isEmpty {
                // Before the append: a checkpoint that cannot be written stops the journal, and the command is refused
                // with nothing applied. Not over refused records, which the scheduler's next start must report.
                try await journal.writeCheckpoint(try StateLoader.snapshot(loaded.state), at: loaded.state.lastLSN)
            }
            let entry = JournalEntry(at: TimeArithmetic.milliseconds(fromSeconds: Date().timeIntervalSince1970), event)
            if case .postgres(let url) = settings.database, event.isClusterCommand {
                // A cluster's command reaches every node through the database, this one's scheduler included (it
                // applies it again when it starts, which changes nothing); a database that cannot take it refuses it.
                // A Swift task's binary goes with it (stored in the database for the other nodes).
                _ = try ClusterDatabase(url: url, node: settings.nodeName).publish(entry, creating: creating)
            }
            let lsn = try await journal.append(try entry.encoded())
            Reducer.apply(entry, lsn: lsn, to: &loaded.state)
            loaded.touched.append((lsn, entry.taskName, true))
            do {
                do {
                    try opened!.view.catchUp(with: loaded, fresh: opened!.fresh)
                } catch let error as KeijiError where error.code == .databaseDamaged {
                    // SQLite met damage the open did not look for: the view is checked, set aside and rebuilt from the
                    // state. Its connection is closed first: it still holds the file being set aside, whose WAL and
                    // shared-memory files have the names the new file's will have.
                    opened = nil
                    _ = try bringUpToDateChecked(location, workspace: workspace, settings: settings, to: loaded)
                }
            } catch {
                // The command is durable in the journal, so it stands: failing now (a full disk under the view) said
                // that a command the scheduler then replayed had failed.
                viewBehind("\(error)")
            }
            return lsn
        }
    }

    /// Rebuilds a damaged view from the journal while no scheduler runs, as a scheduler's start would: the checked
    /// open sets the damaged file aside (as `.damaged`) and starts a new one, which is filled from the state.
    /// Returns false when the check found nothing to set aside (the view was only brought up to date).
    /// - Throws: ``KeijiError`` with code `.journalHeld` when a scheduler holds the journal.
    public static func rebuildView(workspace: Workspace, settings: Settings, repaired: ([Repair]) -> Void = { _ in }) async throws -> Bool {
        try await withJournal(of: workspace, options: JournalOptions(), repaired: repaired) { journal in
            try bringUpToDateChecked(ViewLocation(settings: settings, workspace: workspace), workspace: workspace, settings: settings,
                                     to: try StateLoader.load(from: journal))
        }
    }

    /// Opens the view with SQLite's page-by-page check (a damaged file is set aside and a new one started) and brings
    /// it up to `loaded`. Returns whether it was set aside and rebuilt.
    private static func bringUpToDateChecked(_ location: ViewLocation, workspace: Workspace, settings: Settings,
                                             to loaded: StateLoader.Loaded) throws -> Bool {
        let (view, fresh) = try QueryView.openOrReset(location, workspace: workspace, defaultTimeZone: settings.timeZone)
        try view.catchUp(with: loaded, fresh: fresh)
        return fresh
    }

    /// Runs `body` with the journal open, and so its lock held, and closes it after, whether `body` throws or not.
    /// `repaired` hears first what the open repaired (the journal records it for the scheduler's next report too), then
    /// what loading the state set aside (a checkpoint whose snapshot this keiji cannot read), once `body` is done.
    private static func withJournal<T>(of workspace: Workspace, options: JournalOptions, repaired: ([Repair]) -> Void,
                                       _ body: (Journal) async throws -> T) async throws -> T {
        try workspace.createSystemDirectories()
        let journal: Journal
        do {
            journal = try Journal.open(directory: workspace.journalDirectory, options: options)
        } catch let error as JournalError where error.code == .locked {
            throw KeijiError(.journalHeld, "the scheduler holds the journal; send the command through the bus (is keiji-bus running?)")
        }
        let openRepairs = journal.recovery.repairs.count
        if openRepairs > 0 { repaired(journal.recovery.repairs) }
        func loadRepairs() {
            let later = Array(journal.recovery.repairs.dropFirst(openRepairs))
            if !later.isEmpty { repaired(later) }
        }
        do {
            let result = try await body(journal)
            loadRepairs()
            try await journal.close()
            return result
        } catch {
            loadRepairs()
            try? await journal.close()
            throw error
        }
    }
}
