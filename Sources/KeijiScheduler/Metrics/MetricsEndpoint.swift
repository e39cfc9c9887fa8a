import Foundation
import Synchronization

/// `GET /metrics` on 127.0.0.1 (``LoopbackHTTPServer``): the Prometheus text of ``SchedulerMetrics``, to
/// requests that carry `Authorization: Bearer <the token in ~/.keiji/metrics.token>`. Anything else gets 401 and no
/// metric data: task names and run counts are this user's business, and any local user can reach a loopback port.
/// The token is not the bus's: any local user can also *listen* on the port while the scheduler cannot, and would
/// receive it from the next scrape.
///
/// A port that cannot be bound does not stop the scheduler (metrics are not worth a missed run): ``start()``
/// reports why, and the daemon logs it in one line.
public final class MetricsEndpoint: Sendable {
    public var port: UInt16 { http.port }
    private let http: LoopbackHTTPServer

    /// - Parameter snapshot: reads the engine's state for the gauges set at scrape time.
    public init(port: UInt16, token: String, metrics: SchedulerMetrics, snapshot: @escaping @Sendable () async -> MetricsSnapshot) {
        http = LoopbackHTTPServer(port: port, timeout: .seconds(15)) { request in
            await Self.respond(to: request, token: token, metrics: metrics, snapshot: snapshot)
        }
    }

    /// Starts listening. Returns nil once the port is bound, or why it could not be (the port is taken, …).
    public func start() async -> String? { await http.start() }

    public func stop() async { await http.stop() }

    static func respond(to request: HTTPRequest, token: String, metrics: SchedulerMetrics,
                        snapshot: @Sendable () async -> MetricsSnapshot) async -> HTTPResponse {
        guard Self.isAuthorized(request.header("Authorization"), token: token) else {
            return .text(401, unauthorized, headers: [("WWW-Authenticate", "Bearer")])
        }
        guard request.path == "/metrics" else { return .text(404, "not found: try /metrics\n") }
        guard request.method == "GET" else { return .text(405, "405 method not allowed: GET /metrics\n") }
        metrics.update(await snapshot())
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Data(metrics.render()))
    }

    /// Names the file, and the change a scrape set up with the bus token before 2026-12-07 needs.
    static let unauthorized = "401 unauthorized: send Authorization: Bearer <the token in ~/.keiji/metrics.token>"
        + " (not bus.token: /metrics has its own token since 2026-12-07)\n"

    /// `Authorization: Bearer <token>`, compared in time independent of where a wrong token differs. The scheme in
    /// any case (RFC 9110: `bearer` from some clients and proxies was refused 401).
    static func isAuthorized(_ header: String?, token: String) -> Bool {
        guard let header, header.prefix(7).lowercased() == "bearer " else { return false }
        let offered = Array(header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces).utf8)
        let expected = Array(token.utf8)
        guard !expected.isEmpty, offered.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(offered, expected) { difference |= a ^ b }
        return difference == 0
    }
}
