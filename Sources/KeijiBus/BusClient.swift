import Foundation
import KeijiCore
import Synchronization

/// The CLI's side of the bus: one connection per command; the handshake (``BusHandshake``), then one
/// request line out, one reply line back.
///
/// A connection per command keeps the CLI stateless (it is a short-lived process anyway) and makes every
/// failure local to one command. Transport problems are thrown as `KeijiError` (`.unavailable` when nothing was sent, `.conflict` after) with a message
/// the CLI can print as is; a reply from the bus, even a refusal, is returned, not thrown, because the CLI
/// acts on its code (`offline` means "apply the command offline"). An endpoint that is not our bus (it fails
/// the handshake) is thrown as ``BusAuthenticationFailure``, and the request is never sent to it.
public struct BusClient: Sendable {
    public let endpoint: BusEndpoint
    public let token: String

    public init(endpoint: BusEndpoint, token: String) {
        self.endpoint = endpoint
        self.token = token
    }

    /// Authenticates the bus, then sends `request` and returns the bus's reply.
    /// - Parameter timeout: how long to wait for the reply. Longer than the bus's own 10 s wait on the
    ///   scheduler, so a slow scheduler shows up as an `unacknowledged` reply rather than a client timeout.
    /// - Throws: `KeijiError(.unavailable, …)` if the bus is not running, cannot be connected to, or did not answer the handshake
    ///   within `timeout` (nothing but a hello was sent, so the CLI may take the offline path);
    ///   ``BusAuthenticationFailure`` if what answers is not our bus (nothing but a hello was sent);
    ///   `KeijiError(.conflict, …)` if it does not answer in time, or closes
    ///   the connection without a readable reply. Cancelling the calling task abandons the request.
    public func send(_ request: BusRequest, timeout: Duration = .seconds(15)) async throws -> BusReply {
        let endpoint = endpoint, token = token
        let connection = Connection()
        return try await withTaskCancellationHandler {
            try await DedicatedThread.run("keiji bus client") {
                try Self.exchange(request, endpoint: endpoint, token: token, timeout: timeout, holder: connection)
            }
        } onCancel: {
            connection.cancel()
        }
    }

    private static func exchange(_ request: BusRequest, endpoint: BusEndpoint, token: String, timeout: Duration,
                                 holder: Connection) throws -> BusReply {
        let connection: LineConnection
        do {
            connection = try LineConnection.connect(to: endpoint, what: "keiji-bus push endpoint")
        } catch let error as KeijiError where error.code == .conflict {
            throw KeijiError(.unavailable, "keiji-bus is not running (nothing listens on \(endpoint)); start it, or check BUS_TRANSPORT and BUS_PUSH_PORT in settings.conf")
        } catch let error as KeijiError {
            // Nothing was sent (a socket path too long for a long HOME, …): the command can take the offline path.
            // Told `conflict`, the CLI took it as sent and of unknown fate, and no command could be written.
            throw KeijiError(.unavailable, "cannot reach keiji-bus: \(error.message)")
        }
        defer { connection.close() }
        guard holder.set(connection) else { throw CancellationError() }
        // Encoded once a bus listens: with none (an offline command) the JSON encoder's first use, ~0.3 ms, is saved.
        let line = BusWire.encode(request)
        var reader = connection.makeReader()
        let started = ContinuousClock.now
        do {
            try BusHandshake.authenticate(connection, reader: &reader, role: .client, token: token, endpoint: endpoint,
                                          timeout: timeout, followUp: line)
        } catch {
            if holder.isCancelled { throw CancellationError() }
            throw error
        }
        switch reader.next() {
        case .line(let replyLine):
            guard let reply = try? BusWire.decode(BusReply.self, replyLine) else {
                throw KeijiError(.conflict, "keiji-bus sent an unreadable reply")
            }
            return reply
        case .tooLong:
            throw KeijiError(.conflict, "keiji-bus sent an unreadable reply")
        case .closed:
            if holder.isCancelled { throw CancellationError() }
            if ContinuousClock.now - started >= timeout {
                throw KeijiError(.conflict, "keiji-bus did not answer within \(timeout); the command may or may not have been applied")
            }
            throw KeijiError(.conflict, "keiji-bus closed the connection without answering; the command may or may not have been applied")
        }
    }

    /// Lets task cancellation reach the blocking thread: cancelling shuts the socket down, which wakes it.
    private final class Connection: Sendable {
        private let state = Mutex<(connection: LineConnection?, cancelled: Bool)>((nil, false))

        /// Registers the live connection; `false` if already cancelled.
        func set(_ connection: LineConnection) -> Bool {
            state.withLock { state in
                state.connection = connection
                return !state.cancelled
            }
        }

        func cancel() {
            state.withLock { state in
                state.cancelled = true
                state.connection?.shutdown()
            }
        }

        var isCancelled: Bool { state.withLock { $0.cancelled } }
    }
}
