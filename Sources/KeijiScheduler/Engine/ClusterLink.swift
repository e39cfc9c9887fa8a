import Foundation
import KeijiCore
import Synchronization

/// This node's connection to the cluster's tables (``ClusterDatabase``), on a thread of its own: a claim is a
/// round trip to PostgreSQL on the firing path, and must not wait behind a view flush (which has its own
/// connection on the engine's background thread) nor block Swift's cooperative pool.
///
/// Fail-stop for new work: when the database cannot be reached, ``claim(_:)`` holds nothing, so the node starts
/// no slot (it never schedules cluster tasks alone: that split brain is how Quartz ran records twice, #849).
/// libpq reconnects on the next call.
actor ClusterLink {
    private nonisolated let thread: BackgroundThread
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    private let url: URL
    nonisolated let node: String
    private var database: ClusterDatabase?
    /// The last failure's text per kind of statement (``attempt(_:_:_:)``), so that each kind's outage is logged
    /// once when it starts and once when it ends. One state for every kind flapped when one kind kept failing while
    /// the others went through (finish marks refused, claims taken): two lines every 100 ms.
    private var failing: [String: String] = [:]
    private static let claiming = "claim"
    private let note: @Sendable (String) -> Void
    /// Claims waiting for the next statement, and whether one is queued: claims made while a statement is in
    /// flight go together in the next (group commit), so a node at a thousand firings a second makes a few
    /// hundred claim statements, not a thousand.
    private var pendingClaims: [(slots: [ClaimedSlot], lookUpFirst: Bool, reply: CheckedContinuation<HeldSlots?, Never>)] = []
    private var claimFlushQueued = false
    /// Runs ended whose claims are not yet marked finished (sent every ``finishDelay``; kept while the
    /// database is away), and whether a send is queued. Behind a lock rather than this actor, so the engine hands
    /// them over without waiting for a statement in flight: a run counts as going on until its mark is handed
    /// over, and behind a claim stalled for seconds the next slot of every task became an overlap.
    private nonisolated let pendingFinishes = Mutex<(slots: [ClaimedSlot], sendQueued: Bool)>(([], false))
    /// While this many finish marks wait, the node claims no slot (``claim(_:lookUpFirst:)``), so the backlog
    /// holds at most this many and the ends of the runs going on. Marks beyond a cap were dropped before: a later
    /// clean stop then marked the node stopped with those claims unfinished, and the others ran their slots again.
    nonisolated let finishBacklogLimit: Int
    /// Whether claims are held back for the backlog, and for this node's heartbeat (each logged when it starts
    /// and ends).
    private var claimsHeldBack = false
    private var claimsHeldForHeartbeat = false
    static let finishDelay: Duration = .milliseconds(100)
    /// The task binaries the commands name, downloaded beside this link (on their own thread).
    nonisolated let downloads: ClusterBinaryDownloads
    /// This node's heartbeat, beside this link (its own connection and thread: see ``ClusterHeartbeat``).
    nonisolated let heartbeat: ClusterHeartbeat

    init(url: URL, node: String, finishBacklogLimit: Int = 100_000, note: @escaping @Sendable (String) -> Void) {
        thread = BackgroundThread(name: "keiji-cluster")
        self.url = url
        self.node = node
        self.finishBacklogLimit = finishBacklogLimit
        self.note = note
        downloads = ClusterBinaryDownloads(url: url, note: note)
        heartbeat = ClusterHeartbeat(url: url, node: node)
    }

    deinit { thread.stop() }

    /// Connects, creates the tables if needed, looks up the claims this node's last run left unfinished, and joins
    /// as `node` (on this link's thread). The claims are looked up before the join: a database that fails there
    /// stops the start with nothing changed (joined, the node would be alive to the others for the heartbeat's
    /// timeout, and then a dead node whose claims they take over as interrupted).
    /// - Throws: a one-line error naming DB_URL (unreachable, rights) or the node name (in use).
    /// - Returns: the last command `seq` this node applied before, its unfinished claims, and how long ago its last
    ///   heartbeat before this join was (``ClusterDatabase/lastBeatSecondsAgo``).
    func open(as identity: NodeIdentity? = nil) throws -> (appliedSeq: Int64, ownClaims: [OwnClaim], journalReplaced: Bool,
                                                          lastBeatSecondsAgo: Double?) {
        let database = try ClusterDatabase(url: url, node: node)
        let ownClaims: [OwnClaim]
        do {
            ownClaims = try database.ownUnfinishedClaims()
        } catch {
            throw KeijiError(.database, "cannot look up this node's unfinished claims: \(error)")
        }
        let joining = ContinuousClock.now
        let applied = try database.join(identity: identity)
        self.database = database
        heartbeat.joined(at: joining)
        return (applied, ownClaims, database.journalReplaced, database.lastBeatSecondsAgo)
    }

    /// Publishes a command; throws (one line naming DB_URL) when the database cannot take it: a command the
    /// other nodes could not learn of is refused, never applied here alone. A Swift task's binary is stored first.
    /// `creating`: see ``ClusterDatabase/publish(_:task:binary:creating:)``.
    func publish(_ entry: JournalEntry, creating: Bool = false) throws -> Int64 {
        try opened().publish(entry, creating: creating)
    }

    /// Every task name the command log knows, and whether this node published any of its commands (nil when the
    /// database failed).
    func taskNamesInCommands() -> [String: Bool]? {
        attempt("read the command log's tasks") { try opened().taskNamesInCommands() }
    }

    /// The task ids the command log's saves of each of `tasks` carry (nil when the database failed).
    func savedTaskIDs(of tasks: [String]) -> [String: Set<String>]? {
        attempt("read the command log's saves") { try opened().savedTaskIDs(of: tasks) }
    }

    /// The latest command of each of `tasks` in the command log (nil when the database failed).
    func latestCommands(of tasks: [TaskName]) -> [String: JournalEntry]? {
        attempt("read the command log's latest commands") { try opened().latestCommands(of: tasks.map(\.rawValue)) }
    }

    /// The commands after `seq` (nil when the database failed: the next poll tries again).
    func commands(after seq: Int64) -> [(seq: Int64, record: [UInt8], binary: String?)]? {
        attempt("read commands") { try opened().commands(after: seq) }
    }

    func setAppliedSeq(_ seq: Int64, journalLSN: UInt64? = nil) {
        _ = attempt("record the applied commands") { try opened().setAppliedSeq(seq, journalLSN: journalLSN) }
    }

    /// Claims `slots` for this node; returns the ones it holds, nil when the database failed, while
    /// ``finishBacklogLimit`` finish marks wait for it, or while this node's heartbeat does not go through
    /// (``ClusterHeartbeat/isBeating``). Claims that arrive while one statement is in flight share the next.
    ///
    /// `lookUpFirst`: slots another node has normally claimed already, looked up before they are claimed (see
    /// ``ClusterDatabase/claim(_:lookingUpFirst:)``).
    func claim(_ slots: [ClaimedSlot], lookUpFirst: Bool = false) async -> HeldSlots? {
        guard !slots.isEmpty else { return HeldSlots() }
        guard !holdsClaimsBack(), !heartbeatHoldsClaimsBack() else { return nil }
        return await withCheckedContinuation { reply in
            pendingClaims.append((slots, lookUpFirst, reply))
            guard !claimFlushQueued else { return }
            claimFlushQueued = true
            Task { self.flushClaims() }  // queued behind the claims already waiting for this actor
        }
    }

    private func flushClaims() {
        claimFlushQueued = false
        let batch = pendingClaims
        pendingClaims = []
        let lookUps = Set(batch.filter(\.lookUpFirst).flatMap(\.slots))
        let slots = Set(batch.filter { !$0.lookUpFirst }.flatMap(\.slots))  // one statement may not claim a row twice
        let held = attempt(Self.claiming, "\(slots.count + lookUps.count) slots") { try opened().claim(slots, lookingUpFirst: lookUps) }
        for (asked, _, reply) in batch { reply.resume(returning: held.map { $0.intersection(asked) }) }
    }

    /// Notes that the runs of claimed slots have ended (their last attempts, whatever the outcome), or will not
    /// run here; marked in the database within ``finishDelay``, several at once. A slot this node does not hold
    /// is left as it is.
    nonisolated func finished(_ slots: [ClaimedSlot]) {
        guard !slots.isEmpty else { return }
        let queueSend = pendingFinishes.withLock { pending in
            pending.slots += slots
            defer { pending.sendQueued = true }
            return !pending.sendQueued
        }
        guard queueSend else { return }
        Task {
            try? await Task.sleep(for: Self.finishDelay)
            await self.sendFinishes()
        }
    }

    /// Sends the finish marks waiting now (kept when the database fails). A claim made after this call comes after
    /// them: a slot just decided not to run is finished before a catch-up of the same slot can claim it (a finished
    /// claim is not claimed again; with the marks 100 ms behind, a restart's catch-up ran such a slot).
    func sendFinishes() {
        let slots = pendingFinishes.withLock { pending in
            pending.sendQueued = false
            return pending.slots
        }
        guard !slots.isEmpty else { return }
        if attempt("mark runs finished", "\(slots.count) runs", { try opened().finish(slots) }) != nil {
            pendingFinishes.withLock { $0.slots.removeFirst(slots.count) }  // those handed over meanwhile stay
        }
        // Else kept: sent again at the next heartbeat, with the next run's end, or at the clean stop.
    }

    /// Takes over the unfinished claims of nodes silent for ``ClusterDatabase/heartbeatTimeoutSeconds`` or
    /// stopped (nil when the database failed).
    /// `lostNodes` false: of stopped nodes only (see ``ClusterHeartbeat/hasBeatenWithoutABreak(for:)``).
    func takeOver(lostNodes: Bool) -> [TakenOverSlot]? {
        attempt("take over the slots of lost nodes") {
            try opened().takeOver(afterSeconds: lostNodes ? ClusterDatabase.heartbeatTimeoutSeconds : nil)
        }
    }

    /// Which node holds each of `slots` (nil when the database failed).
    func holders(of slots: [ClaimedSlot]) -> [ClaimedSlot: String]? {
        attempt("look up claims") { try opened().holders(of: slots) }
    }

    /// The latest slot any node has claimed of each task (nil when the database failed).
    func lastClaimedSlots(of tasks: [TaskName]) -> [TaskName: Int64]? {
        attempt("look up the latest claims") {
            var last: [TaskName: Int64] = [:]
            for (task, slot) in try opened().lastClaimedSlots(of: tasks.map(\.rawValue)) {
                if let name = try? TaskName(task) { last[name] = slot }
            }
            return last
        }
    }

    /// The link's periodic upkeep, after each heartbeat: drops a bounded step of old claims, so the deletions keep
    /// pace with the claims a node makes, and sends the finish marks a failed send kept. Returns whether the
    /// database answered and this node may claim again.
    func upkeep() -> Bool {
        guard attempt("drop old claims", nil, { try opened().forgetOldClaims() }) != nil else { return false }
        // Marks kept by a failed send go again, even with no run ending meanwhile; not while the database is away
        // (each attempt would wait out another connection).
        sendFinishes()
        return !holdsClaimsBack() && !heartbeatHoldsClaimsBack()
    }

    /// The finish marks waiting (kept while the database does not take them).
    nonisolated var waitingFinishMarks: Int { pendingFinishes.withLock { $0.slots.count } }

    /// Whether ``finishBacklogLimit`` finish marks wait: then no slot is claimed, as when the database is away.
    private func holdsClaimsBack() -> Bool {
        let waiting = waitingFinishMarks
        return noteHold(&claimsHeldBack, waiting >= finishBacklogLimit,
                        "cluster: \(waiting) finish marks wait for the database, this node starts no slot until they are sent",
                        "cluster: the finish marks are sent; claiming again")
    }

    /// Whether this node's heartbeat does not go through (``ClusterHeartbeat/isBeating``): then no slot is claimed.
    private func heartbeatHoldsClaimsBack() -> Bool {
        noteHold(&claimsHeldForHeartbeat, !heartbeat.isBeating,
                 "cluster: this node's heartbeat has not gone through for \(ClusterHeartbeat.beatGapLimit), it starts no slot until it does "
                     + "(the other nodes take over the claims of a node silent for \(ClusterDatabase.heartbeatTimeoutSeconds) s)",
                 "cluster: the heartbeat goes through again; claiming again")
    }

    /// Returns `held`, and logs when it differs from `state` (a hold starting or ending), which it then becomes.
    private func noteHold(_ state: inout Bool, _ held: Bool, _ starts: @autoclosure () -> String, _ ends: @autoclosure () -> String) -> Bool {
        if held != state {
            state = held
            note(held ? starts() : ends())
        }
        return held
    }

    /// Marks the node stopped (a clean stop), with the finish marks still waiting, in one transaction: a claim left
    /// unfinished by a stopped node is taken over as a run that never began, so a stop marked without them had the
    /// others run those slots again. Tried ``leaveAttempts`` times, ``leaveRetryDelay`` apart, within the heartbeat
    /// timeout. If the database never takes it, the node is not marked stopped: the others take its unfinished
    /// claims over as a dead node's once its heartbeat is old (re-run only by `rerunInterrupted`), unless it
    /// restarts first and settles them by its journal.
    ///
    /// `markingStopped` false (the journal failed): the finish marks only, tried as often; the node is left to be
    /// taken for dead, as the runs whose ends the journal lost may have begun.
    func leave(markingStopped: Bool = true) async {
        let kind = markingStopped ? "mark this node stopped" : "mark runs finished"
        for round in 1...Self.leaveAttempts {
            let slots = pendingFinishes.withLock { $0.slots }
            let sent: Void? = attempt(kind, "with \(slots.count) finish marks") {
                markingStopped ? try opened().leave(finishing: slots) : try opened().finish(slots)
            }
            if sent != nil {
                pendingFinishes.withLock { $0.slots.removeFirst(slots.count) }  // those handed over meanwhile stay
                return
            }
            if round < Self.leaveAttempts { try? await Task.sleep(for: Self.leaveRetryDelay) }
        }
        note("cluster: \(markingStopped ? "this node is not marked stopped" : "finish marks not sent"), the database did not take them "
             + "\(Self.leaveAttempts) times (\(failing[kind] ?? "?")); the other nodes take its unfinished claims over as a dead node's "
             + "after \(ClusterDatabase.heartbeatTimeoutSeconds) s")
    }

    static let leaveAttempts = 4
    static let leaveRetryDelay: Duration = .seconds(1)

    /// Every node the database knows, for the dashboard's system page. Runs on this link's own thread (libpq
    /// blocks); nil when the database does not answer.
    func nodes() -> [ClusterNode]? {
        try? ClusterDatabase.nodes(on: opened().connection)
    }

    private func opened() throws -> ClusterDatabase {
        guard let database else { throw KeijiError(.database, "the cluster link is not open") }
        return database
    }

    /// Runs one statement of `kind` (`detail`: its size, for the log). Nil when it failed; a failed claim means
    /// this node starts no slot until the database answers.
    private func attempt<T>(_ kind: String, _ detail: String? = nil, _ body: () throws -> T) -> T? {
        do {
            let result = try body()
            if let failed = failing.removeValue(forKey: kind) {
                note(kind == Self.claiming ? "cluster: the database is back (it failed with: \(failed)); claiming again"
                                           : "cluster: \(kind) works again (it failed with: \(failed))")
            }
            return result
        } catch {
            if failing[kind] == nil {
                let consequence = kind == Self.claiming ? ", this node starts no slot until the database answers" : ""
                note("cluster: \(kind)\(detail.map { " (\($0))" } ?? "") failed\(consequence): \(error)")
            }
            failing[kind] = "\(error)"
            return nil
        }
    }
}
