import Foundation
import KeijiCore
import Synchronization

/// The scheduler's side of the bus: connects to the pull endpoint, runs the handshake (``BusHandshake``: the
/// bus must prove it knows the token before the link says anything but hello, and the token itself is never
/// sent), and answers each forwarded command with `handler`'s reply, for as long as the surrounding task runs.
/// An endpoint that fails the handshake is not our bus: nothing it sends is ever read as a command.
///
/// The scheduler must outlive any bus restart, so the link never gives up: when the bus is down or the
/// connection drops it reconnects with backoff (100 ms doubling to 2 s; reset after a successful hello).
/// Commands are handled concurrently (a slow `save` must not hold up a `stop`) and each reply is written
/// when it is ready, carrying its request's id; the bus matches them up. Socket reads and writes happen on
/// dedicated threads, never on the cooperative pool the scheduler's engine runs on.
public final class SchedulerBusLink: Sendable {
    static let initialBackoff: Duration = .milliseconds(100)
    static let maxBackoff: Duration = .seconds(2)
    /// Bounds the connect-and-handshake exchange, so a wedged bus cannot hold the link forever.
    static let helloTimeout: Duration = BusHandshake.deadline

    public let endpoint: BusEndpoint
    let token: String
    let handler: @Sendable (BusRequest) async -> BusReply
    let log: @Sendable (String) -> Void
    private let connected = Mutex(false)

    /// - Parameters:
    ///   - handler: answers one command; called concurrently, must always return a reply with the request's id.
    ///   - log: connection changes (connected, lost, refused), for the scheduler's log.
    public init(endpoint: BusEndpoint, token: String,
                handler: @escaping @Sendable (BusRequest) async -> BusReply,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.endpoint = endpoint
        self.token = token
        self.handler = handler
        self.log = log
    }

    /// Whether the bus has passed the handshake (and accepted ours) and commands can arrive. Thread-safe.
    public var isConnected: Bool { connected.withLock { $0 } }

    /// Connects, serves, and reconnects until the calling task is cancelled; returns promptly after that
    /// (in-flight handlers are cancelled and awaited, their replies dropped: the bus has already told those
    /// clients `unacknowledged`).
    public func run() async {
        var backoff = Self.initialBackoff
        var lastFailure: String?
        while !Task.isCancelled {
            do {
                let (connection, reader) = try await connect()
                backoff = Self.initialBackoff
                lastFailure = nil
                log("connected to keiji-bus on \(endpoint)")
                await serve(connection, reader)
                if Task.isCancelled { break }
                log("lost the connection to keiji-bus; reconnecting")
            } catch {
                // Logged once per distinct failure: a bus that is down for an hour is one line, not 1800.
                let message = (error as? KeijiError)?.message ?? (error as? BusAuthenticationFailure)?.message ?? "\(error)"
                if message != lastFailure {
                    log("cannot connect to keiji-bus: \(message); retrying")
                    lastFailure = message
                }
            }
            do { try await Task.sleep(for: backoff) } catch { break }
            backoff = min(backoff * 2, Self.maxBackoff)
        }
    }

    /// Connects and completes the handshake on a dedicated thread. The reader is returned with the
    /// connection: it may already hold commands the bus sent right after its `ok`.
    private func connect() async throws -> (LineConnection, LineReader) {
        let endpoint = endpoint, token = token
        let result = try await DedicatedThread.run("keiji bus link connect") { () throws -> (LineConnection, LineReader) in
            let connection = try LineConnection.connect(to: endpoint, what: "keiji-bus pull endpoint")
            do {
                var reader = connection.makeReader()
                try BusHandshake.authenticate(connection, reader: &reader, role: .scheduler, token: token, endpoint: endpoint,
                                              timeout: Self.helloTimeout)
                connection.setReadTimeout(nil)
                return (connection, reader)
            } catch {
                connection.close()
                throw error
            }
        }
        if Task.isCancelled {
            result.0.close()
            throw CancellationError()
        }
        return result
    }

    /// Serves one connection until it ends or the task is cancelled.
    private func serve(_ connection: LineConnection, _ reader: LineReader) async {
        connected.withLock { $0 = true }
        defer { connected.withLock { $0 = false } }
        let sender = LineSender(connection, name: "keiji bus link writer")
        let (lines, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        // The reader thread owns the descriptor: it closes it after its last read, so the number can never
        // be reused under a read still in progress.
        DedicatedThread.start("keiji bus link reader") {
            var reader = reader
            while case .line(let line) = reader.next() { continuation.yield(line) }
            continuation.finish()
            connection.close()
        }
        let handler = handler, log = log
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for await line in lines {
                    guard let request = try? BusWire.decode(BusRequest.self, line) else {
                        log("ignored an unreadable line from keiji-bus")
                        continue
                    }
                    group.addTask {
                        sender.send(BusWire.encode(await handler(request)))
                    }
                }
                // Iteration also ends on cancellation; make sure the reader thread wakes up and exits.
                connection.shutdown()
            }
        } onCancel: {
            connection.shutdown()
        }
        sender.finish()
    }
}
