import FlyingFox
import FlyingSocks
import Foundation
import Synchronization

/// A FlyingFox server on 127.0.0.1 that reports whether it could listen: what the metrics endpoint and the
/// dashboard share. A port that cannot be bound does not stop the scheduler; ``start()`` says why.
final class LoopbackHTTPServer: Sendable {
    let port: UInt16
    private let server: HTTPServer
    private let serving = Synchronization.Mutex<Task<Void, Never>?>(nil)

    /// The largest request body a route sees: the dashboard's forms carry a token or two, nothing else takes one.
    static let bodyLimitBytes = 8 * 1024

    init(port: UInt16, timeout: TimeInterval, respond: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) throws {
        self.port = port
        server = HTTPServer(address: try sockaddr_in.inet(ip4: "127.0.0.1", port: port), timeout: timeout, logger: .disabled,
                            handler: ClosureHTTPHandler { request in
                                guard let length = request.bodySequence.count, length <= Self.bodyLimitBytes else {
                                    return await Self.refuseLargeBody(request)
                                }
                                return await respond(request)
                            })
    }

    /// 413 for a body over ``bodyLimitBytes`` or of no declared length (chunked), which anyone on the machine may
    /// send, logged in or not. The body is read to its end and dropped, a chunk at a time: read whole, 100 MB posted
    /// to the dashboard's login took the scheduler to 650 MB; left unread, FlyingFox parsed its bytes as the next
    /// request's header line (a 20 MB body: over 300 s of CPU).
    static func refuseLargeBody(_ request: HTTPRequest) async -> HTTPResponse {
        do {
            for try await _ in request.bodySequence {}
        } catch {}
        return HTTPResponse(statusCode: .payloadTooLarge, headers: [.contentType: "text/plain; charset=utf-8", .connection: "close"],
                            body: Data("413 payload too large: a request body here is at most \(bodyLimitBytes) bytes\n".utf8))
    }

    /// Starts listening. Returns nil once the port is bound, or why it could not be (the port is taken, …).
    func start() async -> String? {
        let (outcomes, report) = AsyncStream<String?>.makeStream()
        let server = server
        let task = Task {
            do {
                try await server.run()
            } catch let SocketError.failed(type, _, message) {
                report.yield("\(type.lowercased()): \(message.lowercased())")  // "bind: address already in use"
            } catch {
                report.yield("\(error)")
            }
            report.finish()
        }
        serving.withLock { $0 = task }
        let listening = Task {
            do {
                try await server.waitUntilListening(timeout: 30)
                report.yield(nil)
            } catch {
                report.yield("not listening after 30 s")
            }
        }
        var outcome: String?? = nil
        for await first in outcomes {
            outcome = first
            break
        }
        listening.cancel()
        return outcome ?? "the server stopped"
    }

    func stop() async {
        await server.stop(timeout: 1)
        await serving.withLock { $0 }?.value
    }
}
