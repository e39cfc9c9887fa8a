import FlyingFox
import FlyingSocks
import Foundation
import Synchronization

/// `GET /metrics` on 127.0.0.1 (FlyingFox as the HTTP server): the Prometheus text of ``SchedulerMetrics``, to
/// requests that carry `Authorization: Bearer <bus token>`. Anything else gets 401 and no metric data: task
/// names and run counts are this user's business, and any local user can reach a loopback port.
///
/// A port that cannot be bound does not stop the scheduler (metrics are not worth a missed run): ``start()``
/// reports why, and the daemon logs it in one line.
public final class MetricsEndpoint: Sendable {
    public var port: UInt16 { http.port }
    private let http: LoopbackHTTPServer

    /// - Parameter snapshot: reads the engine's state for the gauges set at scrape time.
    public init(port: UInt16, token: String, metrics: SchedulerMetrics, snapshot: @escaping @Sendable () async -> MetricsSnapshot) throws {
        http = try LoopbackHTTPServer(port: port, timeout: 15) { request in
            await Self.respond(to: request, token: token, metrics: metrics, snapshot: snapshot)
        }
    }

    /// Starts listening. Returns nil once the port is bound, or why it could not be (the port is taken, …).
    public func start() async -> String? { await http.start() }

    public func stop() async { await http.stop() }

    static func respond(to request: HTTPRequest, token: String, metrics: SchedulerMetrics,
                        snapshot: @Sendable () async -> MetricsSnapshot) async -> HTTPResponse {
        guard Self.isAuthorized(request.headers[.authorization], token: token) else {
            return HTTPResponse(statusCode: .unauthorized, headers: [HTTPHeader("WWW-Authenticate"): "Bearer"],
                                body: Data("401 unauthorized: send Authorization: Bearer <the token in ~/.keiji/bus.token>\n".utf8))
        }
        guard request.path == "/metrics" else { return HTTPResponse(statusCode: .notFound, body: Data("not found: try /metrics\n".utf8)) }
        guard request.method == .GET || request.method == .HEAD else { return HTTPResponse(statusCode: .methodNotAllowed) }
        metrics.update(await snapshot())
        return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: Data(metrics.render()))
    }

    /// `Authorization: Bearer <token>`, compared in time independent of where a wrong token differs.
    static func isAuthorized(_ header: String?, token: String) -> Bool {
        guard let header, header.hasPrefix("Bearer ") else { return false }
        let offered = Array(header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces).utf8)
        let expected = Array(token.utf8)
        guard !expected.isEmpty, offered.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(offered, expected) { difference |= a ^ b }
        return difference == 0
    }
}
