import Dispatch
import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The control bus: relays CLI commands (push port) to the one connected scheduler (pull port) and the
/// scheduler's acknowledgements back, one JSON line each way.
///
/// Design, against the original's failure: there a restarted scheduler's first command went to a zombie
/// pull handler and vanished. Here the scheduler connection is a single slot owned by a reader thread that
/// notices EOF the moment the peer's socket closes and empties the slot; a command is only handed to the
/// connection in the slot (re-checked with a non-blocking poll), and every command handed over gets exactly
/// one reply: the scheduler's, or `unacknowledged` if that connection closes, is replaced, or stays silent
/// past the timeout. Nothing a client sends can crash the bus: lines are bounded, JSON is decoded into
/// plain structs, writes never raise SIGPIPE.
///
/// Threads: one acceptor per port and one per connection (the bus has a handful), all blocking I/O.
public final class BusServer: Sendable {
    /// The commands the scheduler accepts (``BusRequest/cmd``); anything else is refused at the bus.
    static let commands: Set<String> = ["save", "enable", "disable", "delete", "resolve", "stop", "trigger"]
    /// Connections served at once across both ports; more are closed on accept. A local flood must not
    /// turn into thousands of threads.
    static let maxConnections = 128
    /// A CLI connection that sends nothing for this long is closed (a client waits on replies, not on itself).
    static let idleClientTimeout: Duration = .seconds(60)
    /// Bounds every write, so a peer that stops reading cannot wedge a bus thread forever.
    static let writeTimeout: Duration = .seconds(10)

    /// The ports asked for (0 picks a free one; see ``boundPushPort``).
    public let pushPort: UInt16
    public let pullPort: UInt16
    let token: String
    let log: @Sendable (String) -> Void
    /// How long a forwarded command waits for the scheduler before the client is told `unacknowledged`.
    let requestTimeout: Duration

    private let state = Mutex(State())
    private let acceptors = DispatchGroup()

    struct State {
        var started = false
        var stopped = false
        var listeners: [TCPListener] = []
        var boundPush: UInt16 = 0
        var boundPull: UInt16 = 0
        /// Every accepted connection, so ``stop()`` can wake their threads.
        var connections: [ObjectIdentifier: LineConnection] = [:]
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
        let waiter: ReplyWaiter
    }

    public convenience init(pushPort: UInt16, pullPort: UInt16, token: String, log: @escaping @Sendable (String) -> Void) {
        self.init(pushPort: pushPort, pullPort: pullPort, token: token, requestTimeout: .seconds(10), log: log)
    }

    init(pushPort: UInt16, pullPort: UInt16, token: String, requestTimeout: Duration, log: @escaping @Sendable (String) -> Void) {
        self.pushPort = pushPort
        self.pullPort = pullPort
        self.token = token
        self.requestTimeout = requestTimeout
        self.log = log
    }

    /// The push port actually bound (differs from ``pushPort`` when that was 0). 0 before ``start()``.
    public var boundPushPort: UInt16 { state.withLock { $0.boundPush } }
    /// The pull port actually bound. 0 before ``start()``.
    public var boundPullPort: UInt16 { state.withLock { $0.boundPull } }
    /// Whether a scheduler is connected (authenticated) right now.
    public var schedulerConnected: Bool { state.withLock { $0.scheduler != nil } }

    // MARK: - Lifecycle

    /// Binds both ports on 127.0.0.1 and starts serving in the background until ``stop()``.
    /// - Throws: `KeijiError` naming the port that could not be bound (e.g. already in use); nothing is left
    ///   listening in that case.
    public func start() throws {
        try state.withLock { state in
            guard !state.started else { throw KeijiError(.conflict, "the bus was already started") }
            state.started = true
        }
        let push = try TCPListener(port: pushPort, role: "push")
        let pull: TCPListener
        do {
            pull = try TCPListener(port: pullPort, role: "pull")
        } catch {
            push.close()
            throw error
        }
        state.withLock { state in
            state.listeners = [push, pull]
            state.boundPush = push.port
            state.boundPull = pull.port
        }
        for (listener, role) in [(push, "push"), (pull, "pull")] {
            acceptors.enter()
            DedicatedThread.start("keiji-bus accept \(role)") { [self] in
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

    private func acceptLoop(_ listener: TCPListener, role: String) {
        while true {
            switch listener.accept() {
            case .stopped:
                return
            case .retry(let reason):
                log("accept on the \(role) port failed: \(reason); retrying")
                usleep(100_000)
                if state.withLock({ $0.stopped }) { return }
            case .connection(let connection):
                let admitted = state.withLock { state -> Bool in
                    guard !state.stopped, state.connections.count < Self.maxConnections else { return false }
                    state.connections[ObjectIdentifier(connection)] = connection
                    return true
                }
                guard admitted else {
                    connection.close()
                    continue
                }
                DedicatedThread.start("keiji-bus \(role) connection") { [self] in
                    if role == "push" { servePush(connection) } else { servePull(connection) }
                    state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
                    connection.close()
                }
            }
        }
    }

    // MARK: - Push port (CLI side)

    /// One reply line per request line, in order. The connection's thread handles one request at a time, so
    /// order is kept by construction.
    private func servePush(_ connection: LineConnection) {
        connection.setReadTimeout(Self.idleClientTimeout)
        connection.setWriteTimeout(Self.writeTimeout)
        var reader = connection.makeReader()
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
        guard BusToken.matches(request.token, token) else {
            log("refused request \(clip(request.id)): \(request.token == nil ? "no token" : "wrong token")")
            return .failure(request.id, .unauthorized, request.token == nil
                ? "the request carries no bus token (see ~/.keiji/bus.token)"
                : "wrong bus token (~/.keiji/bus.token does not match the running keiji-bus)")
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
        var forwarded = request
        forwarded.token = nil
        let line = BusWire.encode(forwarded)
        let waiter = ReplyWaiter()
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
    private func removePending(_ id: String, _ waiter: ReplyWaiter) -> Bool {
        state.withLock { state in
            guard let pending = state.pending[id], pending.waiter === waiter else { return false }
            state.pending[id] = nil
            return true
        }
    }

    // MARK: - Pull port (scheduler side)

    /// Authenticates the hello, makes this the scheduler connection (replacing any previous one), then
    /// routes reply lines to their waiters until the connection ends.
    private func servePull(_ connection: LineConnection) {
        connection.setReadTimeout(.seconds(10))
        connection.setWriteTimeout(Self.writeTimeout)
        var reader = connection.makeReader()
        guard case .line(let line) = reader.next() else { return }
        guard let hello = try? BusWire.decode(SchedulerHello.self, line), hello.hello == SchedulerHello.role else {
            log("refused a pull connection: expected a scheduler hello")
            refuseAndClose(connection, .failure(nil, .invalid, #"expected {"hello":"scheduler","token":"…"}"#))
            return
        }
        guard BusToken.matches(hello.token, token) else {
            log("refused a scheduler connection: \(hello.token == nil ? "no token" : "wrong token")")
            refuseAndClose(connection, .failure(nil, .unauthorized, "wrong bus token (~/.keiji/bus.token does not match the running keiji-bus)"))
            return
        }

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
                let waiter = state.withLock { state -> ReplyWaiter? in
                    guard let pending = state.pending[id], pending.generation == generation else { return nil }
                    state.pending[id] = nil
                    return pending.waiter
                }
                if let waiter { waiter.resolve(reply) } else { log("ignored a reply for unknown request \(clip(id))") }
            }
        }

        let (wasCurrent, orphans) = state.withLock { state -> (Bool, [(String, ReplyWaiter)]) in
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
