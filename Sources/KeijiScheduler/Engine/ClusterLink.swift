import Foundation
import KeijiCore

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
    /// The last failure's text, so a database outage is logged once when it starts and once when it ends.
    private var failing: String?
    private let note: @Sendable (String) -> Void
    private var beats = 0

    init(url: URL, node: String, note: @escaping @Sendable (String) -> Void) {
        thread = BackgroundThread(name: "keiji-cluster")
        self.url = url
        self.node = node
        self.note = note
    }

    deinit { thread.stop() }

    /// Connects, creates the tables if needed and joins as `node` (on this link's thread).
    /// - Throws: a one-line error naming DB_URL (unreachable, rights) or the node name (in use).
    /// - Returns: the last command `seq` this node applied before.
    func open() throws -> Int64 {
        let database = try ClusterDatabase(url: url, node: node)
        let applied = try database.join()
        self.database = database
        return applied
    }

    /// Publishes a command; throws (one line naming DB_URL) when the database cannot take it: a command the
    /// other nodes could not learn of is refused, never applied here alone.
    func publish(_ entry: JournalEntry) throws -> Int64 {
        try opened().publish(try entry.encoded(), task: entry.taskName?.rawValue ?? "")
    }

    /// The commands after `seq` (nil when the database failed: the next poll tries again).
    func commands(after seq: Int64) -> [(seq: Int64, record: [UInt8])]? {
        attempt("read commands") { try opened().commands(after: seq) }
    }

    func setAppliedSeq(_ seq: Int64) {
        _ = attempt("record the applied commands") { try opened().setAppliedSeq(seq) }
    }

    /// Claims `slots` for this node in one statement; returns the ones it holds, nil when the database failed.
    func claim(_ slots: [ClaimedSlot]) -> Set<ClaimedSlot>? {
        guard !slots.isEmpty else { return [] }
        return attempt("claim \(slots.count) slots") { try opened().claim(slots.map { ($0.task, $0.slot) }) }
    }

    /// Marks the node alive and returns the live nodes (nil when the database failed); every 1,800th beat (an
    /// hour at 2 s) also drops old claims.
    func heartbeat() -> [String]? {
        beats += 1
        return attempt("heartbeat") {
            let live = try opened().heartbeat()
            if beats % 1800 == 1 { try opened().forgetOldClaims() }
            return live
        }
    }

    /// Marks the node stopped (a clean stop).
    func leave() {
        _ = attempt("leave") { try opened().leave() }
    }

    /// Every node the database knows, for the dashboard's system page. Runs on this link's own thread (libpq
    /// blocks); nil when the database does not answer.
    func nodes() -> [ClusterNode]? {
        try? ClusterDatabase.nodes(on: opened().connection)
    }

    private func opened() throws -> ClusterDatabase {
        guard let database else { throw KeijiError(.database, "the cluster link is not open") }
        return database
    }

    private func attempt<T>(_ what: String, _ body: () throws -> T) -> T? {
        do {
            let result = try body()
            if let failed = failing {
                failing = nil
                note("cluster: the database is back (it failed with: \(failed)); claiming again")
            }
            return result
        } catch {
            if failing == nil {
                note("cluster: \(what) failed, this node starts no slot until the database answers: \(error)")
            }
            failing = "\(error)"
            return nil
        }
    }
}
