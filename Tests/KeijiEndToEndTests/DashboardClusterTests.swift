import Foundation
import Testing

/// The dashboard's system page of a scheduler on PostgreSQL (`DB_URL`): the cluster's nodes, read from the
/// database, this node among them, and the cluster part of the last recovery. Needs the test server (`scripts/test-postgres`), like ``ClusterTests``.
@Suite(.enabled(if: TestPostgresServer.available, "no PostgreSQL test server: run under scripts/test-postgres (sets KEIJI_TEST_POSTGRES_URL)"))
struct DashboardClusterTests {
    @Test func theSystemPageListsTheClustersNodesFromTheDatabase() async throws {
        let postgres = PostgresViewTests()
        let (url, drop) = try await postgres.makeDatabase()
        let s = try WalkthroughTests.Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await DashboardTests.initialize(s, dashboardPort: port)
        try postgres.setDatabaseURL(url, in: s)
        let settings = s.home + "/keiji/settings.conf"
        try (String(contentsOfFile: settings, encoding: .utf8) + "\nNODE_NAME=node-dash\n").write(toFile: settings, atomically: true, encoding: .utf8)
        let start = try await s.keiji("system", "--start")
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        let base = try await DashboardTests.logIn(port, token: try MetricsEndpointTests.token(s, "dashboard.token"))
        var page = DashboardTests.Exchange(status: 0, headers: [:], body: "")
        let listed = await WalkthroughTests().eventually(.seconds(60)) {
            page = try await DashboardTests.request(port, "GET", base + "system")
            return page.body.contains(#"<table id="nodes">"#) && page.body.contains("<tr><td>node-dash</td>")
        }
        #expect(listed, "\(page.status) \(page.body)")
        // The last recovery's cluster part, as `keiji system --status` gives it.
        #expect(page.body.contains("<dt>cluster</dt><dd>node node-dash; 0 command(s) of other nodes caught up at start;"), "\(page.body)")
        #expect(try await s.keiji("system", "--stop").status == 0)
        await drop()
    }
}
