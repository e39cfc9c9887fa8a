import Foundation
import Testing

@testable import KeijiCore

/// The test PostgreSQL server (`scripts/test-postgres`, which `scripts/test` runs the suite under): its URL is in
/// `KEIJI_TEST_POSTGRES_URL`, for a role that may create databases and roles. Each test gets a database of its own.
enum TestPostgres {
    static let serverURL = ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"]
    /// Under CI a test that needs the server runs without it, and fails: it never skips.
    static let isRequired = ProcessInfo.processInfo.environment["CI"] == "true"
    static let available = serverURL != nil || isRequired
    static let skipReason: Comment = "no PostgreSQL test server: run under scripts/test-postgres (sets KEIJI_TEST_POSTGRES_URL)"

    /// A new, empty database on the test server, and how to drop it.
    static func makeDatabase() throws -> (url: URL, drop: () -> Void) {
        let server = try #require(serverURL.flatMap(URL.init(string:)), "KEIJI_TEST_POSTGRES_URL is not set: scripts/test starts the server")
        let name = "keiji_core_" + UUID().uuidString.prefix(8).lowercased()
        try PostgresConnection(url: server).query("CREATE DATABASE \(name)")
        var components = URLComponents(url: server, resolvingAgainstBaseURL: false)!
        components.path = "/" + name
        return (components.url!, { _ = try? PostgresConnection(url: server).query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") })
    }
}
