import Foundation
import KeijiTestSupport
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The web dashboard of a real `keiji-scheduler` (`DASHBOARD_PORT`), spoken to over plain sockets so nothing
/// follows a redirect or sends a cookie behind the test's back: who is turned away (redirect, 401, 403), login,
/// escaping of a task's log, and an action that lands in the journal as the CLI's would.
struct DashboardTests {
    typealias Session = WalkthroughTests.Session

    typealias Exchange = HTTPAnswer

    /// `keiji init`, then `DASHBOARD_PORT` set to `port` in the session's settings.conf.
    static func initialize(_ s: Session, dashboardPort port: UInt16) async throws {
        #expect(try await s.keiji("init").status == 0)
        let settings = s.home + "/keiji/settings.conf"
        let text = try String(contentsOfFile: settings, encoding: .utf8)
        #expect(text.contains("\nDASHBOARD_PORT=0\n"), "keiji init writes the key, off")
        try text.replacingOccurrences(of: "\nDASHBOARD_PORT=0\n", with: "\nDASHBOARD_PORT=\(port)\n")
            .write(toFile: settings, atomically: true, encoding: .utf8)
    }

    /// One HTTP/1.1 request on a fresh connection; `form` is sent url-encoded.
    /// `host`: the `Host` header, `127.0.0.1:<port>` unless given.
    static func request(_ port: UInt16, _ method: String, _ path: String, cookie: String? = nil, form: [(String, String)]? = nil,
                        headers: [String: String] = [:], host: String? = nil) async throws -> Exchange {
        try await offThePool { try requestBlocking(port, method, path, cookie: cookie, form: form, headers: headers, host: host) }
    }

    static func requestBlocking(_ port: UInt16, _ method: String, _ path: String, cookie: String?, form: [(String, String)]?,
                                headers: [String: String], host: String?) throws -> Exchange {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let body = form.map { $0.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&") } ?? ""
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
        if form != nil { head += "Content-Type: application/x-www-form-urlencoded\r\n" }
        if let cookie { head += "Cookie: \(cookie)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        guard let exchange = try HTTPTestClient.exchange(port, Array((head + "\r\n" + body).utf8), receiveTimeoutSeconds: 60, untilClose: method == "HEAD") else {
            throw LoopbackSocketError(description: "no HTTP response from 127.0.0.1:\(port)")
        }
        return exchange
    }

    /// Logs in with the dashboard token; returns the session's path, `/s/<id>/`, under which its pages are.
    static func logIn(_ port: UInt16, token: String) async throws -> String {
        let login = try await request(port, "POST", "/login", form: [("token", token)])
        let location = try #require(login.headers["location"], "\(login)")
        #expect(login.status == 303 && location.hasPrefix("/s/") && location.hasSuffix("/") && location.count == "/s/".count + 64 + 1, "\(login)")
        return location
    }

    /// What the task page shows of the task's log: the `<pre id="log">` element's contents.
    static func logSection(_ page: String) -> Substring {
        guard let start = page.range(of: #"<pre id="log">"#), let end = page[start.upperBound...].range(of: "</pre>") else { return "" }
        return page[start.upperBound..<end.lowerBound]
    }

    /// The CSRF token in a page's forms.
    static func csrfToken(in page: String) -> String? {
        guard let range = page.range(of: #"name="csrf" value=""#) else { return nil }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    @Test func strangersAreTurnedAwayAndTheTokenHolderActsThroughTheJournal() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await Self.initialize(s, dashboardPort: port)
        let start = try await s.keiji("system", "--start")
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        let create = try await s.run(["task", "--create", "--name=shout", "--desc=prints markup", "--command",
                                      "echo '<script>alert(1)</script> & <b>bold</b>'", "--every", "1s"])
        #expect(create.status == 0, "\(create.stdout)\(create.stderr)")
        let token = try MetricsEndpointTests.token(s, "dashboard.token")

        // Without a session: pages redirect to the login, the event stream and actions get 401.
        for path in ["/", "/tasks/shout", "/system"] {
            let page = try await Self.request(port, "GET", path)
            #expect(page.status == 303 && page.headers["location"] == "/login", "\(path): \(page.status) \(page.headers)")
            #expect(!page.body.contains("shout"), "\(path) shows nothing before the login")
        }
        let loginPage = try await Self.request(port, "GET", "/login")
        #expect(loginPage.status == 200 && loginPage.body.contains(#"<form method="post" action="/login">"#))
        #expect(try await Self.request(port, "GET", "/events").status == 401)
        #expect(try await Self.request(port, "POST", "/tasks/shout/disable", form: [("csrf", "x")]).status == 401)
        #expect(try await Self.request(port, "GET", "/s/" + String(repeating: "ab", count: 32) + "/").status == 303,
                "a made-up session id is no session")

        // A wrong token is refused, and sets no cookie; so is the bus token, which a listener squatting on the port
        // would otherwise collect from the owner's login.
        let busToken = try MetricsEndpointTests.token(s, "bus.token")
        #expect(busToken != token && token.count == 64)
        for wrong in ["", "wrong", token + "x", String(token.dropLast()), busToken] {
            let refused = try await Self.request(port, "POST", "/login", form: [("token", wrong)])
            #expect(refused.status == 401 && refused.headers["set-cookie"] == nil, "\(wrong.count) characters: \(refused.status)")
            #expect(refused.body.contains("~/.keiji/dashboard.token"), "\(refused.body)")
        }
        // A form larger than the dashboard's forms is not read, even with the right token: anyone on the machine may
        // post to the port, and a 100 MB login took the scheduler to 650 MB.
        let padding = ("padding", String(repeating: "a", count: 9000))
        let oversized = try await Self.request(port, "POST", "/login", form: [("token", token), padding])
        #expect(oversized.status == 413 && oversized.headers["set-cookie"] == nil, "\(oversized.status) \(oversized.body)")
        let base = try await Self.logIn(port, token: token)

        // The overview lists the task; its page shows the log's markup as text once a run has printed it.
        var overview = try await Self.request(port, "GET", base)
        #expect(overview.status == 200 && overview.body.contains(#"<a href="tasks/shout">shout</a>"#) && overview.body.contains("every second"),
                "\(overview.body)")
        var taskPage = Exchange(status: 0, headers: [:], body: "")
        let printed = await WalkthroughTests().eventually(.seconds(90)) {
            taskPage = try await Self.request(port, "GET", base + "tasks/shout")
            return Self.logSection(taskPage.body).contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;")
        }
        #expect(printed, "the log line, escaped: \(taskPage.body)")
        #expect(!taskPage.body.contains("<script>alert(1)") && !taskPage.body.contains("<b>bold</b>"), "no markup from the log reaches the page")
        #expect(taskPage.headers["content-security-policy"]?.hasPrefix("default-src 'self';") == true, "\(taskPage.headers)")
        let csrf = try #require(Self.csrfToken(in: taskPage.body), "the page's forms carry the CSRF token")
        #expect(csrf.count == 64)

        // Live updates: the first answer at once, the next when a run moves the journal on.
        let hello = try await Self.request(port, "GET", base + "events")
        #expect(hello.status == 200 && hello.headers["content-type"] == "text/event-stream" && hello.body.contains("event: hello"), "\(hello)")
        let lsn = try #require(hello.body.split(separator: "\n").first { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) })
        var change = Exchange(status: 0, headers: [:], body: "")
        let changed = await WalkthroughTests().eventually(.seconds(90)) {
            change = try await Self.request(port, "GET", base + "events", headers: ["Last-Event-ID": lsn])
            return change.body.contains("event: change")
        }
        #expect(changed && change.body.contains("\nid: ") && !change.body.contains("id: \(lsn)\n"), "a later LSN: \(change.body)")
        let script = try await Self.request(port, "GET", "/static/live.js")
        #expect(script.status == 200 && script.body.contains("EventSource") && script.body.contains("?task="))

        // A POST without the CSRF token, or with another, is refused and changes nothing.
        #expect(try await Self.request(port, "POST", base + "tasks/shout/disable", form: []).status == 403)
        #expect(try await Self.request(port, "POST", base + "tasks/shout/disable", form: [("csrf", String(repeating: "0", count: 64))]).status == 403)
        #expect(try await Self.request(port, "POST", base + "tasks/shout/disable", form: [("csrf", csrf), padding]).status == 413)
        #expect(try await s.keiji("task", "--get", "--name=shout").stdout.contains("IsDisabled: false"))
        #expect(!(try await s.keiji("journal", "dump", "--task", "shout").stdout.contains("task.disabled")))

        // With it: the command goes through the engine, the journal records it as the CLI's, back to the page.
        let disabled = try await Self.request(port, "POST", base + "tasks/shout/disable", form: [("csrf", csrf)])
        #expect(disabled.status == 303 && disabled.headers["location"] == base + "tasks/shout", "\(disabled)")
        let dump = try await s.keiji("journal", "dump", "--task", "shout")
        #expect(dump.stdout.contains("task.disabled"), "\(dump.stdout)")
        #expect(await WalkthroughTests().eventually(.seconds(30)) {
            try await s.keiji("task", "--get", "--name=shout").stdout.contains("IsDisabled: true")
        })
        overview = try await Self.request(port, "GET", base)
        #expect(overview.body.contains(#"<td class="state-disabled">disabled</td>"#), "\(overview.body)")
        // Disabling it again (another tab, the CLI meanwhile) is no refusal: back to the page, nothing journaled.
        let again = try await Self.request(port, "POST", base + "tasks/shout/disable", form: [("csrf", csrf)])
        #expect(again.status == 303, "\(again)")
        #expect(try await s.keiji("journal", "dump", "--task", "shout").stdout.components(separatedBy: "task.disabled").count == 2)
        // A command the engine refuses comes back as a page that says why.
        let refused = try await Self.request(port, "POST", base + "tasks/nosuch/run", form: [("csrf", csrf)])
        #expect(refused.status == 409 && refused.body.contains("nosuch"), "\(refused.status) \(refused.body)")

        let system = try await Self.request(port, "GET", base + "system")
        #expect(system.status == 200 && system.body.contains("Last recovery") && system.body.contains("segments"), "\(system.body)")
        #expect(system.body.contains("<dt>bus</dt><dd>pid "), "the bus's pid from its pid file")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// The session is in the path, never in a cookie: browsers send 127.0.0.1's cookies to every port of it, where
    /// any local user may listen, and a collected cookie replayed with curl was the owner's session. No answer
    /// passes the path on (`Referrer-Policy: no-referrer`), pages link under it, and a logout ends it.
    @Test func theSessionIsInThePathNotInACookieAndALogoutEndsIt() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await Self.initialize(s, dashboardPort: port)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.run(["task", "--create", "--name=idle", "--desc=x", "--command", "true", "--every", "1h"]).status == 0)
        let login = try await Self.request(port, "POST", "/login", form: [("token", try MetricsEndpointTests.token(s, "dashboard.token"))])
        #expect(login.status == 303 && login.headers["set-cookie"] == nil, "no cookie: \(login)")
        let base = try await Self.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        let id = String(base.dropFirst("/s/".count).dropLast())
        // What a browser would send another port: a cookie, or the id itself as one, opens nothing without the path.
        for cookie in ["keiji_session=\(id)", id] {
            let page = try await Self.request(port, "GET", "/", cookie: cookie)
            #expect(page.status == 303 && page.headers["location"] == "/login", "\(page)")
        }
        var pages: [Exchange] = []
        for path in ["", "tasks/idle", "system"] {
            let page = try await Self.request(port, "GET", base + path)
            #expect(page.status == 200, "\(path): \(page.status)")
            #expect(page.body.contains(#"<base href="\#(base)">"#) && page.body.contains(#"<a href="system">System</a>"#), "\(page.body)")
            #expect(!page.body.contains(#"href="/tasks"#) && !page.body.contains(#"action="/tasks"#), "links stay under the session's path")
            pages.append(page)
        }
        #expect(pages[1].body.contains(#"<form class="inline" method="post" action="tasks/idle/run">"#), "\(pages[1].body)")
        for answer in pages + [login, try await Self.request(port, "GET", "/login"), try await Self.request(port, "GET", "/"),
                               try await Self.request(port, "GET", "/events"), try await Self.request(port, "GET", "/static/live.js")] {
            #expect(answer.headers["referrer-policy"] == "no-referrer", "\(answer.status) \(answer.headers)")
        }
        let script = try await Self.request(port, "GET", "/static/live.js")
        #expect(script.body.contains(#"new EventSource("events""#), "relative to the page's base: \(script.body)")

        // Logging out takes the CSRF token, as every POST does, and ends this session only.
        let other = try await Self.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        let csrf = try #require(Self.csrfToken(in: pages[0].body), "the logout form carries the CSRF token")
        #expect(pages[0].body.contains(#"<form class="inline" method="post" action="logout">"#))
        #expect(try await Self.request(port, "POST", base + "logout", form: []).status == 403)
        let out = try await Self.request(port, "POST", base + "logout", form: [("csrf", csrf)])
        #expect(out.status == 303 && out.headers["location"] == "/login", "\(out)")
        let after = try await Self.request(port, "GET", base)
        #expect(after.status == 303 && after.headers["location"] == "/login", "the session is over: \(after)")
        #expect(try await Self.request(port, "GET", base + "events").status == 401)
        #expect(try await Self.request(port, "GET", other).status == 200, "another session goes on")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// DNS rebinding: a page of another site whose name was made to resolve to 127.0.0.1 is same-origin with what its
    /// scripts fetch from it, so a request whose `Host` is not this server gets 421, the login page and a session's
    /// pages included; `localhost` and `[::1]` with the port are served.
    @Test func aRequestForAnotherHostIsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await Self.initialize(s, dashboardPort: port)
        #expect(try await s.keiji("system", "--start").status == 0)
        let base = try await Self.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        for host in ["rebind.attacker.example:\(port)", "127.0.0.1:\(port &+ 1)", "127.0.0.1", ""] {
            for (method, path) in [("GET", "/login"), ("GET", base), ("GET", base + "system"), ("GET", "/static/live.js")] {
                let refused = try await Self.request(port, method, path, host: host)
                #expect(refused.status == 421 && refused.body.hasPrefix("421 misdirected request"), "\(host) \(path): \(refused)")
                #expect(!refused.body.contains("<html"), "\(refused.body)")
            }
            let login = try await Self.request(port, "POST", "/login", form: [("token", try MetricsEndpointTests.token(s, "dashboard.token"))], host: host)
            #expect(login.status == 421 && login.headers["location"] == nil, "\(host): \(login)")
        }
        for host in ["localhost:\(port)", "[::1]:\(port)", "LOCALHOST:\(port)"] {
            #expect(try await Self.request(port, "GET", base, host: host).status == 200, "\(host)")
        }
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A task's page follows its log as lines arrive: `/events?task=X` answers when the log grows, also while
    /// the run goes on and the journal does not move.
    @Test func aTaskPageFollowsItsLogWhileARunGoesOn() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await Self.initialize(s, dashboardPort: port)
        #expect(try await s.keiji("system", "--start").status == 0)
        let create = try await s.run(["task", "--create", "--name=slow", "--desc=prints slowly", "--command",
                                      "for i in $(seq 1 600); do echo line-$i; sleep 1; done", "--every", "1h", "--timeout", "none"])
        #expect(create.status == 0, "\(create.stdout)\(create.stderr)")
        #expect(try await s.keiji("task", "--run", "--name=slow").status == 0)
        let base = try await Self.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        var page = Exchange(status: 0, headers: [:], body: "")
        #expect(await WalkthroughTests().eventually(.seconds(60)) {
            page = try await Self.request(port, "GET", base + "tasks/slow")
            return Self.logSection(page.body).contains("line-1")
        }, "the run's first line: \(page.body)")
        #expect(page.body.contains(#"data-task="slow""#))
        // One run prints a line a second and goes on for minutes: the journal does not move, the log grows.
        let hello = try await Self.request(port, "GET", base + "events?task=slow")
        let version = try #require(hello.body.split(separator: "\n").first { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) })
        let lsn = version.split(separator: ".").first.map(String.init) ?? ""
        #expect(version.contains("."), "the version carries the log's size: \(version)")
        var change = Exchange(status: 0, headers: [:], body: "")
        #expect(await WalkthroughTests().eventually(.seconds(60)) {
            change = try await Self.request(port, "GET", base + "events?task=slow", headers: ["Last-Event-ID": version])
            return change.body.contains("event: change")
        }, "a change when the log grows: \(change.body)")
        #expect(change.body.contains("id: \(lsn)."), "the same LSN, a longer log: \(change.body)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A run that ended before its process began is listed as on `keiji task --runs`: no start, duration or
    /// lateness, `stopped (never began)`, and the overview's last result says the same.
    @Test func aRunThatNeverBeganHasNoStartOnTheDashboard() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await Self.initialize(s, dashboardPort: port)
        let create = try await s.run(["task", "--create", "--name=lead", "--desc=x", "--command", "true", "--every", "1h"])
        #expect(create.status == 0, "\(create.stdout)\(create.stderr)")
        try await TaskViewTests.journalARunThatNeverBegan(s, task: "lead")
        #expect(try await s.keiji("system", "--start").status == 0)
        let base = try await Self.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        let page = try await Self.request(port, "GET", base + "tasks/lead")
        let row = try #require(page.body.components(separatedBy: "<tr>").first { $0.contains("the scheduler stopped before the run began") },
                               "\(page.body)")
        let cells = row.components(separatedBy: "<td").dropFirst().map { $0.drop { $0 != ">" }.dropFirst().prefix { $0 != "<" } }
        #expect(cells.count == 8 && Array(cells[1...4]) == ["-", "-", "-", "stopped (never began)"], "\(row)")
        #expect(try await Self.request(port, "GET", base).body.contains("stopped (never began)"))
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A description's and a command's control characters show on the task page as `--get` prints them: HTML-escaped
    /// alone, an ESC and a BEL showed as the same empty box.
    @Test func aTaskPageShowsControlCharactersAsGetDoes() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await Self.initialize(s, dashboardPort: port)
        let create = try await s.run(["task", "--create", "--name=colours", "--desc=red \u{1B}[31mtext\u{07} <b>", "--command",
                                      "echo '\u{1B}]0;title\u{07}'", "--every", "1h"])
        #expect(create.status == 0, "\(create.stdout)\(create.stderr)")
        #expect(try await s.keiji("system", "--start").status == 0)
        let base = try await Self.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        let page = try await Self.request(port, "GET", base + "tasks/colours").body
        #expect(page.contains(#"<dd>red \u{1B}[31mtext\u{7} &lt;b&gt;</dd>"#), "\(page)")
        #expect(page.contains(#"<dd>command echo &#39;\u{1B}]0;title\u{7}&#39;</dd>"#), "\(page)")
        #expect(!page.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" }, "\(page.debugDescription)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A dashboard port that is taken costs the dashboard, not the scheduler: it says so in one line of its log, and
    /// at `system --start`, with who holds the port.
    @Test func aTakenPortLeavesTheSchedulerRunningWithoutTheDashboard() async throws {
        let (squatter, port) = try LoopbackSocket.listening()
        defer { close(squatter) }
        let s = try Session()
        defer { s.cleanUp() }
        try await Self.initialize(s, dashboardPort: port)
        let start = try await s.keiji("system", "--start")
        let problem = "dashboard: cannot serve on 127.0.0.1:\(port), the dashboard is off, scheduling goes on: bind: address already in use"
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        // Who holds the port: here the test itself; another user's process would be named as one not to trust (PortHolderTests).
        #expect(start.stderr.hasPrefix("warning: scheduler: \(problem); held by a process of this user (uid \(getuid())"), "\(start.stderr)")
        #expect(start.stderr.hasSuffix("another keiji or another server of yours (ss -ltnp)\n") && start.stderr.split(separator: "\n").count == 1,
                "\(start.stderr)")
        #expect(try await s.run(["task", "--create", "--name=tack", "--desc=x", "--command", "true", "--every", "1s"]).status == 0)
        let ran = await WalkthroughTests().eventually(.seconds(90)) {
            try await s.keiji("task", "--runs", "--name=tack").stdout.contains("succeeded")
        }
        #expect(ran, "the scheduler runs tasks without its dashboard port")
        let logs = s.home + "/.keiji/logs/services/scheduler"
        let log = try FileManager.default.contentsOfDirectory(atPath: logs)
            .map { (try? String(contentsOfFile: logs + "/" + $0, encoding: .utf8)) ?? "" }.joined()
        #expect(log.components(separatedBy: problem).count == 2, "the log says it once: \(log)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }
}
