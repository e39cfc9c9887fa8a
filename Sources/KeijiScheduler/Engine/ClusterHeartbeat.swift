import Foundation
import KeijiCore

/// This node's heartbeat, on a connection and a thread of its own. Other nodes take over the unfinished claims
/// of a node whose heartbeat is older than ``ClusterDatabase/heartbeatTimeoutSeconds``, and re-run them as each
/// task's `rerunInterrupted` says. On the cluster link's connection the heartbeat queued behind the link's own
/// statements: a claims table locked for 12 s (a long `LOCK`, a `VACUUM FULL`) held every claim there, and the
/// beat behind them, so a node that was alive and running its slots looked dead, and its runs were re-run
/// elsewhere. Here it touches only `keiji_nodes`, and a node beats as long as its process runs and reaches the
/// database. A paused process (SIGSTOP) beats no more than before: this thread stops with the others.
actor ClusterHeartbeat {
    private nonisolated let thread = BackgroundThread(name: "keiji-heartbeat")
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    private let url: URL
    private let node: String
    /// Opened on the first beat; libpq reconnects on the next call after a failure.
    private var database: ClusterDatabase?

    init(url: URL, node: String) {
        self.url = url
        self.node = node
    }

    deinit { thread.stop() }

    /// Marks the node alive and returns the live nodes; nil when the database failed (the cluster link logs
    /// outages: its own statements fail too).
    func beat() -> [String]? {
        do {
            let database = try self.database ?? ClusterDatabase(url: url, node: node)
            self.database = database
            return try database.heartbeat()
        } catch {
            return nil
        }
    }
}
