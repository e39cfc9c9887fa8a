import Foundation
import KeijiCore
import Synchronization

/// The CLI's side of the bus: one connection per command, one request line out, one reply line back.
///
/// A connection per command keeps the CLI stateless (it is a short-lived process anyway) and makes every
/// failure local to one command. Transport problems are thrown as `KeijiError(.conflict, …)` with a message
/// the CLI can print as is; a reply from the bus, even a refusal, is returned, not thrown, because the CLI
/// acts on its code (`offline` means "apply the command offline").
public struct BusClient: Sendable {
    public let port: UInt16
    public let token: String

    public init(port: UInt16 = BusPorts.push(), token: String) {
        self.port = port
        self.token = token
    }

    /// Sends `request` (with this client's token) and returns the bus's reply.
    /// - Parameter timeout: how long to wait for the reply. Longer than the bus's own 10 s wait on the
    ///   scheduler, so a slow scheduler shows up as an `unacknowledged` reply rather than a client timeout.
    /// - Throws: `KeijiError(.unavailable, …)` if the bus is not running (nothing was sent); `KeijiError(.conflict, …)`
    ///   if it does not answer in time, or closes
    ///   the connection without a readable reply. Cancelling the calling task abandons the request.
    public func send(_ request: BusRequest, timeout: Duration = .seconds(15)) async throws -> BusReply {
        var request = request
        request.token = token
        let line = BusWire.encode(request)
        let port = port
        let connection = Connection()
        return try await withTaskCancellationHandler {
            try await DedicatedThread.run("keiji bus client") {
                try Self.exchange(line, port: port, timeout: timeout, holder: connection)
            }
        } onCancel: {
            connection.cancel()
        }
    }

    private static func exchange(_ line: [UInt8], port: UInt16, timeout: Duration, holder: Connection) throws -> BusReply {
        let connection: LineConnection
        do {
            connection = try LineConnection.connect(port: port, what: "keiji-bus push port")
        } catch let error as KeijiError where error.code == .conflict {
            throw KeijiError(.unavailable, "keiji-bus is not running (nothing listens on 127.0.0.1:\(port)); start it, or check KEIJI_BUS_PUSH_PORT")
        } catch let error as KeijiError {
            throw KeijiError(.conflict, "cannot reach keiji-bus: \(error.message)")
        }
        defer { connection.close() }
        guard holder.set(connection) else { throw CancellationError() }
        connection.setReadTimeout(timeout)
        connection.setWriteTimeout(timeout)
        let started = ContinuousClock.now
        guard connection.write(line) else {
            throw KeijiError(.conflict, "keiji-bus closed the connection before the command was sent")
        }
        var reader = connection.makeReader()
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
