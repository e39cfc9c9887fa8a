import Foundation
import KeijiCore
import Synchronization

/// The web dashboard on 127.0.0.1 (`DASHBOARD_PORT`, ``LoopbackHTTPServer``): server-rendered pages of
/// the engine's state, and the task actions, which go through ``SchedulerEngine/submit(_:)`` with the same
/// events the bus carries, so the journal records them exactly as CLI commands.
///
/// Any local user can reach a loopback port, so everything but `/login` and `/static/live.js` needs a session
/// (its id in the path, `/s/<id>/…`: ``DashboardSessions``),
/// got by posting the token in `~/.keiji/dashboard.token` (not the bus's: whoever holds the port while the
/// scheduler cannot would receive what the owner types); every POST also carries the session's CSRF token. A port that cannot be bound
/// does not stop the scheduler (``start()`` reports why, as ``MetricsEndpoint`` does).
public final class DashboardServer: Sendable {
    public var port: UInt16 { http.port }
    private let http: LoopbackHTTPServer

    public init(port: UInt16, token: String, engine: SchedulerEngine) {
        let routes = DashboardRoutes(sessions: DashboardSessions(token: token), engine: engine, port: port)
        http = LoopbackHTTPServer(port: port, timeout: .seconds(30)) { request in await routes.respond(to: request) }
    }

    /// Starts listening. Returns nil once the port is bound, or why it could not be (the port is taken, …).
    public func start() async -> String? { await http.start() }

    public func stop() async { await http.stop() }
}

/// Which page or action a request is, and whether it may have it.
struct DashboardRoutes: Sendable {
    let sessions: DashboardSessions
    let engine: SchedulerEngine
    /// The port served, which the `Host` header must name (``isServed(host:port:)``).
    let port: UInt16

    /// A request for another host gets 421 (``isServed(host:port:)``). Every answer says `Referrer-Policy: no-referrer`:
    /// a page's address holds its session (``DashboardSessions``), and no request the page makes may carry it elsewhere.
    func respond(to request: HTTPRequest) async -> HTTPResponse {
        var response = Self.isServed(host: request.header("Host"), port: port) ? await route(request)
            : .text(421, "421 misdirected request: this is keiji's dashboard, at 127.0.0.1:\(port) or localhost:\(port) only\n")
        response.headers.append(("Referrer-Policy", "no-referrer"))
        return response
    }

    /// Whether `Host` names this server: `127.0.0.1`, `localhost` or `[::1]` with its port (without one for port 80).
    /// Anything else is a page of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding): its
    /// scripts would be same-origin with what they fetch here, so they get nothing, not even the login page.
    static func isServed(host: String?, port: UInt16) -> Bool {
        guard let host = host?.lowercased() else { return false }
        let names = ["127.0.0.1", "localhost", "[::1]"]
        return names.contains { host == "\($0):\(port)" || (port == 80 && host == $0) }
    }

    func route(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.path
        switch (request.method, path) {
        case ("GET", "/login"): return Self.html(200, LoginPage.html(problem: nil))
        case ("POST", "/login"): return await logIn(request)
        case ("GET", "/static/live.js"):
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/javascript; charset=utf-8")], body: Data(LiveUpdates.script.utf8))
        default: break
        }
        guard let (session, inner) = sessionAndPath(path) else {
            if request.method == "GET" && !path.hasSuffix("/events") { return Self.redirect("/login") }
            return .text(401, "401 unauthorized: log in at /login with the token in ~/.keiji/dashboard.token\n")
        }
        if request.method == "POST" {
            let form = Self.form(request.body)  // at most 8 KiB (LoopbackHTTPServer)
            guard DashboardSessions.constantTimeEqual(form["csrf"] ?? "", session.csrfToken) else {
                return .text(403, "403 forbidden: the form's CSRF token is missing or wrong; reload the page\n")
            }
            if inner == "/logout" {
                sessions.logOut(id: session.id)
                return Self.redirect("/login")
            }
            return await act(path: inner, session: session)
        }
        guard request.method == "GET" else { return .text(405, "405 method not allowed\n") }  // HEAD arrives as GET
        switch inner {
        case "/": return Self.html(200, OverviewPage(snapshot: await engine.dashboardSnapshot(), session: session).html())
        case "/system":
            let snapshot = await engine.dashboardSnapshot()
            let facts = await engine.systemFacts()
            let nodes = snapshot.clustered ? await engine.clusterNodes() : nil
            return Self.html(200, SystemPage(snapshot: snapshot, facts: facts, nodes: nodes, session: session).html())
        case "/events":
            let engine = engine
            // On a task's page the log's size is part of the version: its tail follows a run's lines as they arrive.
            let task = request.query.first { $0.name == "task" }.flatMap { Self.taskName($0.value) }
            let body = await LiveUpdates.events(lastEventID: request.header("Last-Event-ID")) {
                let lsn = await engine.appliedLSN
                guard let task else { return String(lsn) }
                return "\(lsn).\(await engine.logSize(of: task))"
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-store")], body: Data(body.utf8))
        default:
            guard inner.hasPrefix("/tasks/"), let name = Self.taskName(String(inner.dropFirst("/tasks/".count))) else { return Self.notFound() }
            let log = await engine.logTail(of: name, lines: 100)
            guard let page = TaskPage(snapshot: await engine.dashboardSnapshot(), name: name, logTail: log, session: session).html()
            else { return Self.notFound() }
            return Self.html(200, page)
        }
    }

    /// The live session a path `/s/<id>/…` names, and the rest of the path (`/` at least); nil for any other path.
    func sessionAndPath(_ path: String) -> (DashboardSessions.Session, String)? {
        guard path.hasPrefix("/s/") else { return nil }
        let rest = path.dropFirst("/s/".count)
        let id = rest.prefix { $0 != "/" }
        guard let session = sessions.session(id: String(id)) else { return nil }
        let inner = rest.dropFirst(id.count)
        return (session, inner.isEmpty ? "/" : String(inner))
    }

    func logIn(_ request: HTTPRequest) async -> HTTPResponse {
        let form = Self.form(request.body)  // at most 8 KiB (LoopbackHTTPServer)
        guard let session = sessions.logIn(offering: form["token"] ?? "") else {
            return Self.html(401, LoginPage.html(problem: "That is not the dashboard token (~/.keiji/dashboard.token; since 2026-12-07 the bus token no longer logs in)."))
        }
        return Self.redirect(session.base)
    }

    /// `POST /s/<id>/tasks/<name>/<action>`: the command through the engine, then back to the task's page.
    func act(path: String, session: DashboardSessions.Session) async -> HTTPResponse {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[0] == "tasks", let name = Self.taskName(String(parts[1])),
              let event = TaskPage.event(for: String(parts[2]), name) else { return Self.notFound() }
        do {
            _ = try await engine.submit(event)
        } catch let error as KeijiError where error.code == .unchanged {
            // Already so (another tab, the CLI): what was asked for is there, as the CLI says with exit 0.
        } catch {
            let message = (error as? KeijiError)?.message ?? "\(error)"
            return Self.html(409, HTMLText.page(title: "Refused", body: """
                <h1>Refused</h1><p class="bad">\(HTMLText.escape(message))</p>
                <p><a href="tasks/\(HTMLText.pathSegment(name.rawValue))">Back to \(HTMLText.escape(name.rawValue))</a></p>
                """, session: session))
        }
        return Self.redirect(session.base + "tasks/" + HTMLText.pathSegment(name.rawValue))
    }

    static func taskName(_ segment: String) -> TaskName? {
        try? TaskName(segment.removingPercentEncoding ?? segment)
    }

    /// `application/x-www-form-urlencoded`, as browsers post forms.
    static func form(_ body: Data) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            fields[decode(kv[0])] = kv.count > 1 ? decode(kv[1]) : ""
        }
        return fields
    }

    /// Scripts only from this server (live.js), no framing: a second wall behind the escaping.
    static let contentSecurityPolicy = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"

    static func html(_ status: Int, _ page: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"), ("X-Frame-Options", "DENY"),
                                               ("Content-Security-Policy", contentSecurityPolicy)], body: Data(page.utf8))
    }

    /// 303 See Other: after a POST the browser GETs the target.
    static func redirect(_ location: String) -> HTTPResponse { HTTPResponse(status: 303, headers: [("Location", location)]) }

    static func notFound() -> HTTPResponse { .text(404, "404 not found\n") }
}

/// `/login`: one field for the dashboard token.
enum LoginPage {
    static func html(problem: String?) -> String {
        HTMLText.page(title: "Log in", body: """
            <h1>Log in</h1>
            \(problem.map { "<p class=\"bad\" id=\"problem\">\(HTMLText.escape($0))</p>" } ?? "")
            <form method="post" action="/login">
            <p><label for="token">Dashboard token (the contents of <code>~/.keiji/dashboard.token</code>)</label></p>
            <p><input type="password" id="token" name="token" size="70" autocomplete="off" autofocus>
            <button type="submit" id="login">Log in</button></p>
            </form>
            """, session: nil)
    }
}
