import Foundation
import KeijiCore
import Synchronization

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
    /// When this node's present run of beats began, each within ``beatGapLimit`` of the one before (nil after a
    /// failed beat).
    private var beatingSince: ContinuousClock.Instant?
    /// This node's beats as the link sees them before each claim (``isBeating``). Behind a lock, not this actor:
    /// a hanging beat holds the actor.
    private struct Beats {
        /// When the last beat that went through began: the heartbeat it recorded (`now()`, the statement's start
        /// on the database's clock) is no older.
        var last: ContinuousClock.Instant?
        /// When the beat in flight began (nil between beats).
        var inFlightSince: ContinuousClock.Instant?
        /// Whether a beat failed since the last that went through.
        var failing = false
        /// Whether the last beat that went through took longer than ``beatGapLimit`` (it waited for its row, held
        /// by another transaction): the heartbeat it recorded was that old when it went through.
        var lastTookLong = false
    }
    private nonisolated let beats = Mutex(Beats())
    /// Beats come every ``SchedulerEngine/heartbeatInterval`` (2 s); a longer gap means this process was paused.
    static let beatGapLimit: Duration = .seconds(5)

    init(url: URL, node: String) {
        self.url = url
        self.node = node
    }

    deinit { thread.stop() }

    /// Marks the node alive and returns the live nodes; nil when the database failed (the cluster link logs
    /// outages: its own statements fail too).
    func beat() -> [String]? {
        let started = ContinuousClock.now
        beats.withLock { $0.inFlightSince = started }
        do {
            let database = try self.database ?? ClusterDatabase(url: url, node: node)
            self.database = database
            let live = try database.heartbeat()
            let tookLong = ContinuousClock.now - started > Self.beatGapLimit
            let previous = beats.withLock { beats in
                defer { beats = Beats(last: started, inFlightSince: nil, failing: false, lastTookLong: tookLong) }
                return beats.last
            }
            // A beat that took long is a break: the others saw this node's heartbeat grow old meanwhile.
            if tookLong {
                beatingSince = nil
            } else if beatingSince == nil || previous.map({ started - $0 > Self.beatGapLimit }) ?? true {
                beatingSince = started
            }
            return live
        } catch {
            beats.withLock { $0.inFlightSince = nil; $0.failing = true }
            beatingSince = nil
            return nil
        }
    }

    /// Whether this node has beaten without a break for `duration`: only then is another node's heartbeat older
    /// than that a sign of its death. After an outage of the whole database every node's heartbeat is old; the
    /// first node back took over the claims of the others, alive and running their slots, and re-ran them.
    func hasBeatenWithoutABreak(for duration: Duration) -> Bool {
        guard let beatingSince, let last = beats.withLock({ $0.last }) else { return false }
        return ContinuousClock.now - last <= Self.beatGapLimit && last - beatingSince >= duration
    }

    /// Whether this node's beats go through: not while they fail, or one hangs, more than ``beatGapLimit`` after
    /// the last that went through (its own row locked, or its connection refused while the link's still works).
    /// The node then claims nothing new (``ClusterLink/claim(_:lookUpFirst:)``): the others take over the claims
    /// of a node whose heartbeat is 10 s old, and would run again the slots it runs. A pause (SIGSTOP) between
    /// beats leaves this true: its first beat comes at once, and ``SchedulerEngine`` checks again the claims a
    /// pause made old before their runs begin.
    /// After a beat that went through only once it had waited longer than that, the node claims again at the next
    /// beat that goes through at once (a soak run saw the others take over a slot claimed in between: the late
    /// beat had recorded a heartbeat 16 s old).
    nonisolated var isBeating: Bool {
        beats.withLock { beats in
            if beats.lastTookLong { return false }
            guard beats.failing || beats.inFlightSince != nil else { return true }
            return beats.last.map { ContinuousClock.now - $0 <= Self.beatGapLimit } ?? false
        }
    }

    /// The link joined the cluster at `instant` (the join's statement began after it), which set this node's
    /// heartbeat: the beats that follow are counted from then, so a first beat that fails does not hold the
    /// recovery's claims back.
    nonisolated func joined(at instant: ContinuousClock.Instant) {
        beats.withLock { beats in
            if beats.last == nil { beats.last = instant }
        }
    }
}
