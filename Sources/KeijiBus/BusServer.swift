import Dispatch
import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The control bus: relays CLI commands (push endpoint) to the one connected scheduler (pull endpoint) and
/// the scheduler's acknowledgements back, one JSON line each way, after a mutual handshake on every
/// connection (``BusHandshake``: the token never crosses the wire).
///
/// Design, against the original's failure: there a restarted scheduler's first command went to a zombie
/// pull handler and vanished. Here the scheduler connection is a single slot owned by a reader thread that
/// notices EOF the moment the peer's socket closes and empties the slot; a command is only handed to the
/// connection in the slot (re-checked with a non-blocking poll), and every command handed over gets exactly
/// one reply: the scheduler's, or `unacknowledged` if that connection closes, is replaced, or stays silent
/// past the timeout. Nothing a client sends can crash the bus: lines are bounded, JSON is decoded into
/// plain structs, writes never raise SIGPIPE.
///
/// Connection caps, so nobody without the token can starve the scheduler or a real client: a connection
/// has ``handshakeDeadline`` to authenticate and is closed after that; at most ``maxUnauthenticated``
/// unauthenticated connections per endpoint are kept, and a new one evicts the oldest (a flood cannot lock
/// out a real peer, whose handshake takes milliseconds); authenticated clients are capped at ``maxClients``;
/// the scheduler's link is on its own endpoint and never counted against any client cap.
///
/// Threads: one acceptor per endpoint and one per connection (bounded by the caps above), all blocking I/O.
public final class BusServer: Sendable {
    /// The commands the scheduler accepts (``BusRequest/cmd``); anything else is refused at the bus.
    static let commands: Set<String> = ["save", "enable", "disable", "delete", "resolve", "stop", "trigger"]
    /// Connections per endpoint still in their handshake; a new one beyond this evicts the oldest.
    static let maxUnauthenticated = 16
    /// Authenticated CLI connections served at once; more are refused after their handshake.
    static let maxClients = 64
    /// A CLI connection that sends nothing for this long is closed (a client waits on replies, not on itself).
    static let idleClientTimeout: Duration = .seconds(60)
    /// ``idleClientTimeout``, or a test's own (the cap test holds 64 idle clients while it sets them up).
    let idleTimeout: Duration
    /// Bounds every write, so a peer that stops reading cannot wedge a bus thread forever.
    static let writeTimeout: Duration = .seconds(10)

    /// The endpoints asked for (TCP port 0 picks a free one; see ``boundPush``).
    public let push: BusEndpoint
    public let pull: BusEndpoint
    let token: String
    let log: @Sendable (String) -> Void
    /// How long a forwarded command waits for the scheduler before the client is told `unacknowledged`.
    let requestTimeout: Duration
    /// How long a new connection has to complete ``BusHandshake`` before it is closed.
    let handshakeDeadline: Duration

    private let state = Mutex(State())
    private let acceptors = DispatchGroup()

    struct State {
        var started = false
        var stopped = false
        var listeners: [BusListener] = []
        var boundPush: BusEndpoint?
        var boundPull: BusEndpoint?
        /// Every accepted connection, so ``stop()`` can wake their threads.
        var connections: [ObjectIdentifier: LineConnection] = [:]
        /// Connections still in their handshake, per role, oldest first.
        var unauthenticated: [BusRole: [LineConnection]] = [:]
        /// Authenticated CLI connections being served.
        var clients = 0
        /// The scheduler commands go to; `nil` when none is connected.
        var scheduler: SchedulerSession?
        var generations: UInt64 = 0
        /// Forwarded requests awaiting the scheduler's reply, by request id.
        var pending: [String: PendingRequest] = [:]
    }

    struct SchedulerSession {
        let connection: LineConnection
        /// Distinguishes successive scheduler connections, so a dead one's cleanup never touches its successor.
        let generation: UInt64
    }

    struct PendingRequest {
        let generation: UInt64
        let waiter: ReplyWaiter<BusReply>
    }

    public convenience init(push: BusEndpoint, pull: BusEndpoint, token: String, log: @escaping @Sendable (String) -> Void) {
        self.init(push: push, pull: pull, token: token, requestTimeout: .seconds(10), log: log)
    }

    init(push: BusEndpoint, pull: BusEndpoint, token: String, requestTimeout: Duration,
         handshakeDeadline: Duration = BusHandshake.deadline, idleTimeout: Duration = BusServer.idleClientTimeout,
         log: @escaping @Sendable (String) -> Void) {
        self.idleTimeout = idleTimeout
        self.push = push
        self.pull = pull
        self.token = token
        self.requestTimeout = requestTimeout
        self.handshakeDeadline = handshakeDeadline
        self.log = log
    }

    /// The push endpoint actually bound (the real port when TCP port 0 was asked for); ``push`` before ``start()``.
    public var boundPush: BusEndpoint { state.withLock { $0.boundPush } ?? push }
    /// The pull endpoint actually bound; ``pull`` before ``start()``.
    public var boundPull: BusEndpoint { state.withLock { $0.boundPull } ?? pull }
    /// Whether a scheduler is connected (authenticated) right now.
    public var schedulerConnected: Bool { state.withLock { $0.scheduler != nil } }

    // MARK: - Lifecycle

    /// Binds both endpoints and starts serving in the background until ``stop()``.
    /// - Throws: `KeijiError` naming the endpoint that could not be bound (e.g. already in use); nothing is
    ///   left listening in that case.
    public func start() throws {
        try state.withLock { state in
            guard !state.started else { throw KeijiError(.conflict, "the bus was already started") }
            state.started = true
        }
        let push = try BusListener(self.push, role: "push")
        let pull: BusListener
        do {
            pull = try BusListener(self.pull, role: "pull")
        } catch {
            push.close()
            throw error
        }
        state.withLock { state in
            state.listeners = [push, pull]
            state.boundPush = push.endpoint
            state.boundPull = pull.endpoint
        }
        for (listener, role) in [(push, BusRole.client), (pull, BusRole.scheduler)] {
            acceptors.enter()
            DedicatedThread.start("keiji-bus accept \(role.rawValue)") { [self] in
                acceptLoop(listener, role: role)
                listener.close()
                acceptors.leave()
            }
        }
    }

    /// Stops accepting, closes every connection (requests in flight get `unacknowledged`), and returns once
    /// both ports are released. Idempotent.
    public func stop() {
        let (listeners, connections, orphans) = state.withLock { state in
            state.stopped = true
            state.scheduler = nil
            let orphans = state.pending.map { ($0.key, $0.value.waiter) }
            state.pending.removeAll()
            return (state.listeners, Array(state.connections.values), orphans)
        }
        for listener in listeners { listener.shutdown() }
        for connection in connections { connection.shutdown() }
        for (id, waiter) in orphans { waiter.resolve(.failure(id, .unacknowledged, "keiji-bus is stopping")) }
        _ = acceptors.wait(timeout: .now() + .seconds(5))
    }

    private func acceptLoop(_ listener: BusListener, role: BusRole) {
        while true {
            switch listener.accept() {
            case .stopped:
                return
            case .retry(let reason):
                log("accept on \(listener.endpoint) failed: \(reason); retrying")
                usleep(100_000)
                if state.withLock({ $0.stopped }) { return }
            case .connection(let connection):
                // A Unix socket tells us who connected: another uid is refused before it costs a thread.
                if case .unix = listener.endpoint, let uid = Socket.peerUID(connection.fd), uid != getuid() {
                    log("refused a \(role.rawValue) connection from uid \(uid)")
                    connection.close()
                    continue
                }
                guard admit(connection, role) else {
                    connection.close()
                    continue
                }
                DedicatedThread.start("keiji-bus \(role.rawValue) connection") { [self] in
                    if role == .client { servePush(connection) } else { servePull(connection) }
                    state.withLock { state in
                        state.connections[ObjectIdentifier(connection)] = nil
                        state.unauthenticated[role]?.removeAll { $0 === connection }
                    }
                    connection.close()
                }
            }
        }
    }

    /// Registers a new connection as unauthenticated (evicting the oldest one past the cap) and arms its
    /// handshake deadline. `false` once the bus is stopping.
    private func admit(_ connection: LineConnection, _ role: BusRole) -> Bool {
        let (admitted, evicted) = state.withLock { state -> (Bool, LineConnection?) in
            guard !state.stopped else { return (false, nil) }
            state.connections[ObjectIdentifier(connection)] = connection
            var waiting = state.unauthenticated[role, default: []]
            let evicted = waiting.count >= Self.maxUnauthenticated ? waiting.removeFirst() : nil
            waiting.append(connection)
            state.unauthenticated[role] = waiting
            return (true, evicted)
        }
        if let evicted {
            log("too many unauthenticated \(role.rawValue) connections; closed the oldest")
            evicted.shutdown()
        }
        guard admitted else { return false }
        let (seconds, attoseconds) = handshakeDeadline.components
        let deadline = DispatchTime.now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        DispatchQueue.global().asyncAfter(deadline: deadline) { [self] in
            let late = state.withLock { $0.unauthenticated[role]?.contains { $0 === connection } ?? false }
            if late {
                log("closed a \(role.rawValue) connection that did not authenticate within \(handshakeDeadline)")
                connection.shutdown()
            }
        }
        return true
    }

    /// Runs the handshake; on success moves the connection out of the unauthenticated set (a client also
    /// takes one of the ``maxClients`` places). `false`: refused (and answered) or gone; close it.
    private func authenticate(_ connection: LineConnection, _ reader: inout LineReader, as role: BusRole) -> Bool {
        connection.setReadTimeout(handshakeDeadline)
        connection.setWriteTimeout(Self.writeTimeout)
        switch BusHandshake.respond(connection, reader: &reader, expecting: role, token: token) {
        case .closed:
            return false
        case .refused(let reply, let reason):
            log("refused a \(role.rawValue) connection: \(reason)")
            refuseAndClose(connection, reply)
            return false
        case .authenticated:
            break
        }
        enum Promotion { case promoted, gone, full }
        let promotion = state.withLock { state -> Promotion in
            guard let index = state.unauthenticated[role]?.firstIndex(where: { $0 === connection }) else { return .gone }
            state.unauthenticated[role]?.remove(at: index)
            guard role == .client else { return .promoted }
            guard state.clients < Self.maxClients else { return .full }
            state.clients += 1
            return .promoted
        }
        switch promotion {
        case .promoted: return true
        case .gone: return false
        case .full:
            log("refused a client: \(Self.maxClients) clients are connected already")
            refuseAndClose(connection, .failure(nil, .busy, "keiji-bus is serving \(Self.maxClients) clients already; retry"))
            return false
        }
    }

    // MARK: - Push port (CLI side)

    /// After the handshake, one reply line per request line, in order. The connection's thread handles one
    /// request at a time, so order is kept by construction.
    private func servePush(_ connection: LineConnection) {
        var reader = connection.makeReader()
        guard authenticate(connection, &reader, as: .client) else { return }
        defer { state.withLock { $0.clients -= 1 } }
        guard connection.write(BusWire.encode(BusReply(id: nil, ok: true, lsn: nil, code: nil, error: nil))) else { return }
        connection.setReadTimeout(idleTimeout)
        while true {
            switch reader.next() {
            case .closed:
                return
            case .tooLong:
                log("refused a request larger than 1 MiB; closing that connection")
                refuseAndClose(connection, .failure(nil, .invalid, "request larger than 1 MiB"))
                return
            case .line(let line):
                guard connection.write(BusWire.encode(reply(to: line))) else { return }
            }
        }
    }

    /// The reply to one request line: a refusal decided here, or the scheduler's answer.
    func reply(to line: [UInt8]) -> BusReply {
        let request: BusRequest
        do {
            request = try BusWire.decode(BusRequest.self, line)
        } catch {
            let reason = "request is not a valid BusRequest JSON object (\(BusWire.describe(error)))"
            log("refused a request: \(reason)")
            return .failure(BusWire.salvageID(line), .invalid, reason)
        }
        guard Self.commands.contains(request.cmd) else {
            log("refused request \(clip(request.id)): unknown command \(clip(request.cmd))")
            return .failure(request.id, .invalid, "unknown command \"\(clip(request.cmd))\"; expected one of "
                + Self.commands.sorted().joined(separator: ", "))
        }
        let reply = forward(request)
        log("\(request.cmd) \(clip(request.taskID ?? "-")) (request \(clip(request.id))): "
            + (reply.ok ? "acknowledged at lsn \(reply.lsn.map(String.init) ?? "?")"
                        : "\(reply.code?.rawValue ?? "failed"): \(reply.error ?? "")"))
        return reply
    }

    private enum Route {
        case offline
        case duplicate
        case scheduler(LineConnection)
    }

    /// Hands a request to the connected scheduler and waits for its reply, the connection's end, or the
    /// timeout, whichever comes first.
    private func forward(_ request: BusRequest) -> BusReply {
        let line = BusWire.encode(request)
        let waiter = ReplyWaiter<BusReply>()
        let route = state.withLock { state -> Route in
            // The poll catches a scheduler that died an instant ago, before its reader thread has run.
            guard !state.stopped, let session = state.scheduler, !session.connection.peerHasClosed() else { return .offline }
            guard state.pending[request.id] == nil else { return .duplicate }
            state.pending[request.id] = PendingRequest(generation: session.generation, waiter: waiter)
            return .scheduler(session.connection)
        }
        switch route {
        case .offline:
            return .failure(request.id, .offline, "no scheduler is connected")
        case .duplicate:
            return .failure(request.id, .invalid, "a request with id \"\(clip(request.id))\" is already in flight")
        case .scheduler(let connection):
            if !connection.write(line) {
                // Unusable connection: wake its reader so the slot empties, and answer for ourselves unless
                // the reader's cleanup already did.
                connection.shutdown()
                if removePending(request.id, waiter) {
                    return .failure(request.id, .unacknowledged, "the scheduler connection failed while forwarding the command")
                }
                return waiter.wait(timeout: nil)!
            }
            if let reply = waiter.wait(timeout: requestTimeout) { return reply }
            if removePending(request.id, waiter) {
                return .failure(request.id, .unacknowledged,
                                "the scheduler did not acknowledge within \(requestTimeout); the command may or may not have been applied")
            }
            // Resolved concurrently with the timeout: the resolver signals right after removing it.
            return waiter.wait(timeout: nil)!
        }
    }

    /// Removes `waiter` from the pending table if it is still there; `true` means the caller must answer.
    private func removePending(_ id: String, _ waiter: ReplyWaiter<BusReply>) -> Bool {
        state.withLock { state in
            guard let pending = state.pending[id], pending.waiter === waiter else { return false }
            state.pending[id] = nil
            return true
        }
    }

    // MARK: - Pull port (scheduler side)

    /// Runs the handshake, makes this the scheduler connection (replacing any previous one), then routes
    /// reply lines to their waiters until the connection ends.
    private func servePull(_ connection: LineConnection) {
        var reader = connection.makeReader()
        guard authenticate(connection, &reader, as: .scheduler) else { return }

        // Install and acknowledge under the connection's write lock, so the `ok` line precedes any forwarded
        // command on this connection and "connected" on the scheduler side means commands will arrive.
        var generation: UInt64?
        var replaced: SchedulerSession?
        connection.write(BusWire.encode(BusReply(id: nil, ok: true, lsn: nil, code: nil, error: nil))) {
            (generation, replaced) = state.withLock { state -> (UInt64?, SchedulerSession?) in
                guard !state.stopped else { return (nil, nil) }
                state.generations += 1
                let previous = state.scheduler
                state.scheduler = SchedulerSession(connection: connection, generation: state.generations)
                return (state.generations, previous)
            }
        }
        guard let generation else { return }
        if let replaced {
            log("a new scheduler connection replaces the previous one")
            replaced.connection.shutdown()
        }
        log("scheduler connected")
        connection.setReadTimeout(nil)  // a scheduler may have nothing to say for days

        loop: while true {
            switch reader.next() {
            case .closed, .tooLong:
                break loop
            case .line(let line):
                guard let reply = try? BusWire.decode(BusReply.self, line), let id = reply.id else {
                    log("ignored an unreadable line from the scheduler")
                    continue
                }
                let waiter = state.withLock { state -> ReplyWaiter<BusReply>? in
                    guard let pending = state.pending[id], pending.generation == generation else { return nil }
                    state.pending[id] = nil
                    return pending.waiter
                }
                if let waiter { waiter.resolve(reply) } else { log("ignored a reply for unknown request \(clip(id))") }
            }
        }

        let (wasCurrent, orphans) = state.withLock { state -> (Bool, [(String, ReplyWaiter<BusReply>)]) in
            let current = state.scheduler?.generation == generation
            if current { state.scheduler = nil }
            let orphaned = state.pending.filter { $0.value.generation == generation }
            for id in orphaned.keys { state.pending[id] = nil }
            return (current, orphaned.map { ($0.key, $0.value.waiter) })
        }
        for (id, waiter) in orphans {
            waiter.resolve(.failure(id, .unacknowledged,
                                    "the scheduler disconnected before acknowledging; the command may or may not have been applied"))
        }
        if wasCurrent { log("scheduler disconnected") }
    }

    /// Sends a final error line, then closes gracefully: our FIN after the line, and the peer's unread input
    /// drained so the kernel does not answer it with a RST that could discard the line before it is read.
    private func refuseAndClose(_ connection: LineConnection, _ reply: BusReply) {
        connection.write(BusWire.encode(reply))
        connection.finishWriting()
        connection.drain()
    }

    /// Untrusted strings in logs and messages, cut short.
    private func clip(_ text: String) -> String {
        text.count <= 80 ? text : String(text.prefix(80)) + "…"
    }
}
