import Foundation
import KeijiCore
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The test PostgreSQL server's URL (`KEIJI_TEST_POSTGRES_URL`, for a role that may create databases and roles).
enum TestPostgresServer {
    static let url = ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"]
    /// Under CI a missing server fails these tests (they run, and `server()` throws); they never skip there.
    static let available = url != nil || ProcessInfo.processInfo.environment["CI"] == "true"
}

/// `DB_URL=postgresql://…` against the real binaries and the test PostgreSQL server (`scripts/test-postgres`):
/// the seed's walkthrough with the view in PostgreSQL, read back with `psql`, and every way a database can be
/// unusable refused at `keiji system --start` with one line naming DB_URL.
@Suite(.enabled(if: TestPostgresServer.available, "no PostgreSQL test server: run under scripts/test-postgres (sets KEIJI_TEST_POSTGRES_URL)"))
struct PostgresViewTests {
    typealias Session = WalkthroughTests.Session

    func server() throws -> URLComponents {
        let text = try #require(TestPostgresServer.url, "KEIJI_TEST_POSTGRES_URL is not set: scripts/test starts the test server")
        return try #require(URLComponents(string: text))
    }

    /// `psql "$url" -Atc sql` (unaligned, tuples only): the real client.
    @discardableResult
    func psql(_ url: String, _ sql: String) async throws -> String {
        try await offThePool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
            process.arguments = [url, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql]
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw PSQLFailed(message: "psql: \(stderr)") }
            return stdout.trimmingCharacters(in: .newlines)
        }
    }

    struct PSQLFailed: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// A new, empty database on the test server (owned by the server's role), its URL, and how to drop it.
    /// - Parameter serverURL: another server's URL (the restartable one); the test server's when nil.
    func makeDatabase(on serverURL: String? = nil) async throws -> (url: String, drop: @Sendable () async -> Void) {
        let server = try serverURL.map { try #require(URLComponents(string: $0)) } ?? server()
        let name = "keiji_e2e_" + UUID().uuidString.prefix(8).lowercased()
        try await psql(server.string!, "CREATE DATABASE \(name)")
        var database = server
        database.path = "/" + name
        let admin = server.string!
        return (database.string!, { _ = try? await psql(admin, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") })
    }

    func setDatabaseURL(_ url: String, in s: Session) throws {
        try s.setSetting("DB_URL", url)
    }

    func pid(of service: String, in s: Session) -> pid_t? {
        let text = try? String(contentsOfFile: s.home + "/.keiji/exec/services/\(service).pid", encoding: .utf8)
        return text?.split(separator: " ").first.flatMap { pid_t($0) }
    }

    func eventually(_ timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async -> Bool {
        await WalkthroughTests().eventually(timeout, condition)
    }

    @Test func theWalkthroughWithItsViewInPostgres() async throws {
        let (url, drop) = try await makeDatabase()
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try setDatabaseURL(url, in: s)
        let password = try #require(URLComponents(string: url)?.password)

        // Offline (no scheduler): the command is journaled and the view in PostgreSQL shows it at once.
        var r = try await s.keiji("task", "--create", "--name=ping", "--desc=says ping", "--command", "echo ping", "--every", "1s")
        #expect(r.status == 0 && r.stdout.contains("written offline"), "\(r.stdout)\(r.stderr)")
        #expect(try await psql(url, #"SELECT "Name", "Type", "Schedule", "IsDisabled" FROM task_models"#) == "ping|HMS|units:seconds,interval:1|0")

        // A settings.conf others can read is a password others can read: said at the start (it is 0600 from init).
        chmod(s.home + "/keiji/settings.conf", 0o644)
        r = try await s.keiji("system", "--start")
        #expect(r.status == 0 && r.stdout.contains("scheduler: started"), "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("holds DB_URL's password and others can read it (mode 644): chmod 600"), "\(r.stderr)")
        #expect(!r.stderr.contains(password) && !r.stdout.contains(password))
        r = try await s.keiji("task", "--create", "--name=pong", "--desc=says pong", "--command", "echo pong", "--every", "1s")
        #expect(r.status == 0 && r.stdout.contains("acknowledged by the scheduler"), "\(r.stdout)\(r.stderr)")

        // Runs land in `runs`, and the seed's columns in `task_models`, as psql reads them.
        let ran = await eventually {
            try await psql(url, #"SELECT count(DISTINCT "TaskName") FROM runs WHERE "Outcome" = 'succeeded'"#) == "2"
        }
        #expect(ran, "both tasks ran and their runs reached PostgreSQL")
        let rows = try await psql(url, #"SELECT "ID", "Name", "Description", "Executable", "IsError", "LastExecutionTime" IS NOT NULL FROM task_models ORDER BY "ID""#)
        #expect(rows == "1|ping|says ping|/bin/sh -c echo ping|0|t\n2|pong|says pong|/bin/sh -c echo pong|0|t", "\(rows)")

        r = try await s.keiji("task", "--get", "--name=pong")
        #expect(r.status == 0 && r.stdout.contains("TaskModel:") && r.stdout.contains("ID: 2") && r.stdout.contains("Name: pong")
                && r.stdout.contains("Schedule: units:seconds,interval:1") && !r.stdout.contains("LastExecutionTime: N/A"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("task", "--get", "--json")
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)")
        #expect(objects.compactMap { $0["Name"] as? String } == ["ping", "pong"])
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("query view: PostgreSQL postgresql://") && r.stdout.contains(":***@") && !r.stdout.contains(password), "\(r.stdout)")
        #expect(r.stdout.contains("pong") && r.stdout.contains("last succeeded on "), "\(r.stdout)")
        r = try await s.keiji("system", "--status", "--json")
        let status = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect((status["view"] as? [String: Any])?["database"] as? String == "postgresql")

        // Commands through the scheduler reach PostgreSQL.
        #expect(try await s.keiji("task", "--disable", "--name=ping").status == 0)
        #expect(try await psql(url, #"SELECT "IsDisabled", "NextExecutionTime" IS NULL FROM task_models WHERE "Name" = 'ping'"#) == "1|t")
        #expect(try await s.keiji("task", "--delete", "--name=pong").status == 0)
        #expect(try await psql(url, #"SELECT count(*) FROM task_models WHERE "Name" = 'pong'"#) == "0")
        #expect(try await psql(url, #"SELECT count(*) FROM runs WHERE "TaskName" = 'pong'"#) == "0")

        // Offline again, with the scheduler stopped: create and enable reach PostgreSQL too.
        #expect(try await s.keiji("system", "--stop").status == 0)
        r = try await s.keiji("task", "--create", "--name=later", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 0 && r.stdout.contains("written offline"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("task", "--enable", "--name=ping").status == 0)
        #expect(try await psql(url, #"SELECT "Name", "IsDisabled" FROM task_models ORDER BY "Name" COLLATE "C""#) == "later|0\nping|0")
        let lsn = try await psql(url, "SELECT lsn FROM applied_lsn")
        #expect(Int(lsn) ?? 0 > 5, "applied_lsn follows the journal: \(lsn)")
        await drop()
    }

    /// The seed's whole walkthrough (``WalkthroughTests/walkthroughWithCommandTasks(databaseURL:)``, steps 1–12 to
    /// the uninstall) with the view in PostgreSQL; what it left there is the tasks it ended with.
    /// A password given in DB_URL's query (`?password=`, which libpq takes) is a secret as one in `user:pw@` is:
    /// never in `--status` (text or JSON) nor an error, and a settings.conf others can read is warned about.
    @Test func aPasswordInTheURLsQueryIsMaskedAndWarnedAbout() async throws {
        let (url, drop) = try await makeDatabase()
        let s = try Session()
        defer { s.cleanUp() }
        var components = try #require(URLComponents(string: url))
        let password = try #require(components.password)
        components.password = nil
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "password", value: password)]
        #expect(try await s.keiji("init").status == 0)
        try setDatabaseURL(components.string!, in: s)
        chmod(s.home + "/keiji/settings.conf", 0o644)
        var r = try await s.keiji("system", "--start")
        #expect(r.status == 0 && r.stderr.contains("holds DB_URL's password and others can read it (mode 644)"), "\(r.stdout)\(r.stderr)")
        for arguments in [["system", "--status"], ["system", "--status", "--json"]] {
            r = try await s.run(arguments)
            #expect(r.status == 0 && r.stdout.contains("password=***") && !(r.stdout + r.stderr).contains(password), "\(r.stdout)\(r.stderr)")
        }
        #expect(try await s.keiji("system", "--stop").status == 0)
        components.port = 1
        try setDatabaseURL(components.string!, in: s)
        r = try await s.keiji("system", "--start")
        #expect(r.status == 1 && r.stderr.contains("cannot connect") && !(r.stdout + r.stderr).contains(password), "\(r.stdout)\(r.stderr)")
        await drop()
    }

    @Test func theSeedsWholeWalkthroughOnPostgres() async throws {
        let (url, drop) = try await makeDatabase()
        try await WalkthroughTests().walkthroughWithCommandTasks(databaseURL: url)
        #expect(try await psql(url, #"SELECT "Name", "IsDisabled" FROM task_models ORDER BY "Name" COLLATE "C""#) == "broken|0\nping|0")
        await drop()
    }

    /// `task --list --json` and `task --runs --json` read the view where DB_URL puts it.
    @Test func listAndRunsReadThePostgresView() async throws {
        let (url, drop) = try await makeDatabase()
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try setDatabaseURL(url, in: s)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "echo ping", "--every", "1s").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=later", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("task", "--disable", "--name=later").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        // Runs that started: a slot that passed while the scheduler came up is a row too (missed, no start).
        #expect(await eventually {
            Int(try await psql(url, #"SELECT count(*) FROM runs WHERE "TaskName" = 'ping' AND "StartTime" IS NOT NULL"#)) ?? 0 >= 2
        })
        #expect(try await s.keiji("task", "--disable", "--name=ping").status == 0)
        #expect(await eventually { try await psql(url, #"SELECT "IsRunning" FROM task_models WHERE "Name" = 'ping'"#) == "0" })

        var r = try await s.keiji("task", "--list", "--json")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)\(r.stderr)")
        #expect(list.compactMap { $0["task"] as? String } == ["later", "ping"], "both disabled: by name")
        let ping = try #require(list.last)
        // Its last run succeeded, or was journaled within the firing lead when the disable came and never began.
        let lastRan = ping["lastOutcome"] as? String == "succeeded" && ping["lastExitCode"] as? Int == 0
        #expect(ping["state"] as? String == "disabled" && (lastRan || ping["lastOutcome"] as? String == "stopped"), "\(ping)")
        r = try await s.keiji("task", "--runs", "--name=ping", "--json", "--limit", "1000")
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)\(r.stderr)")
        let stored = try await psql(url, #"SELECT "RunId" FROM runs WHERE "TaskName" = 'ping' ORDER BY "EndTime" DESC"#)
        #expect(runs.compactMap { $0["runId"] as? String } == stored.split(separator: "\n").map(String.init), "every stored run, newest first")
        // Slots that passed before the scheduler was up are recorded missed (downtime); every run that began succeeded;
        // a run journaled within the firing lead when the disable came never began.
        let started = runs.filter { $0["start"] is String && $0["outcome"] as? String != "stopped" }
        #expect(started.count >= 2 && started.allSatisfy { $0["outcome"] as? String == "succeeded" && $0["exitCode"] as? Int == 0 }, "\(runs)")
        #expect(runs.filter { !($0["start"] is String) }.allSatisfy {
            ($0["outcome"] as? String)?.hasPrefix("missed") == true || $0["result"] as? String == "stopped (never began)"
        }, "\(runs)")
        #expect(try await s.keiji("system", "--stop").status == 0)
        await drop()
    }

    /// A `keiji` call opens one session with the database however many of its parts use it: an offline create reads
    /// the view, publishes the command to the cluster and writes the view (three sessions, three SCRAM exchanges,
    /// before). And it ends it cleanly, also when the call fails (none abandoned: the client gone without saying
    /// so). Counted by the server (`pg_stat_database.sessions`, `sessions_abandoned`, flushed as each session ends).
    @Test func aCallOpensOneSessionWithTheDatabase() async throws {
        let (url, drop) = try await makeDatabase()
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try setDatabaseURL(url, in: s)
        #expect(try await s.keiji("task", "--create", "--name=first", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        // One session of the test's own for every count; its own start is in the count once it is flushed.
        let watcher = try PostgresConnection(url: try #require(URL(string: url)))
        try watcher.query("SELECT pg_stat_force_next_flush()")
        func sessions() throws -> Int {
            let value = try watcher.query("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").first?.first ?? nil
            return value.flatMap { Int($0) } ?? -1
        }
        // Client sessions with the database besides the watcher: an ending one has flushed its count by the time it
        // leaves pg_stat_activity.
        func others() throws -> Int {
            let value = try watcher.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                          + "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").first?.first ?? nil
            return value.flatMap { Int($0) } ?? -1
        }
        // The first create's session ended and is counted (the watcher's own was flushed after its first query).
        #expect(await eventually(.seconds(60)) { try others() == 0 }, "the first create's session ended")
        let before = try sessions()
        let r = try await s.keiji("task", "--create", "--name=second", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 0 && r.stdout.contains("written offline"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually(.seconds(60)) { try others() == 0 }, "the call's sessions ended")
        #expect(try sessions() - before == 1, "sessions the call opened")
        let refused = try await s.keiji("task", "--create", "--name=second", "--desc=x", "--command", "true", "--every", "1h")
        #expect(refused.status != 0 && refused.stderr.contains("second"), "a second task of that name is refused: \(refused.stderr)")
        #expect(await eventually(.seconds(30)) { try sessions() > before + 1 }, "the failed call's session was counted")
        let abandoned = try watcher.query("SELECT sessions_abandoned FROM pg_stat_database WHERE datname = current_database()")
        #expect(abandoned.first?.first == "0", "sessions the calls left without ending them: \(abandoned)")
        await drop()
    }

    /// A database without the view (a new one, or DB_URL moved to another) is built from the journal at start.
    @Test func anEmptyDatabaseIsRebuiltFromTheJournalAtStart() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        // Written while the view was still in SQLite.
        for name in ["one", "two"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }
        #expect(try await s.keiji("task", "--disable", "--name=two").status == 0)
        let (url, drop) = try await makeDatabase()
        try setDatabaseURL(url, in: s)
        let r = try await s.keiji("system", "--start")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(try await psql(url, #"SELECT "ID", "Name", "IsDisabled" FROM task_models ORDER BY "ID""#) == "1|one|0\n2|two|1")
        let status = try await s.keiji("system", "--status")
        #expect(status.stdout.contains("(view rebuilt)"), "\(status.stdout)")
        #expect(try await s.keiji("system", "--stop").status == 0)
        await drop()
    }

    /// Each way DB_URL can be unusable stops `system --start` before any service starts: exit non-zero, one line
    /// naming DB_URL, never the password, and nothing created in the database. A wrong password, a closed port, a
    /// server that never answers (refused after libpq's 5 s connect timeout, not hung), a host name that does not
    /// resolve, a role without rights, a bad parameter and a URL without host or database.
    @Test func anUnusableDatabaseIsRefusedAtStartInOneLine() async throws {
        let server = try server()
        let (url, drop) = try await makeDatabase()
        let database = try #require(URLComponents(string: url))
        // A role that may connect but not create tables (PostgreSQL 15+: no CREATE on schema public for PUBLIC).
        let role = "keiji_reader_" + UUID().uuidString.prefix(6).lowercased()
        try await psql(server.string!, "CREATE ROLE \(role) LOGIN PASSWORD 'reader-secret-77'")
        try await psql(url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")

        var wrongPassword = database
        wrongPassword.password = "wrong-secret-42"
        var closedPort = database
        closedPort.port = 1  // 127.0.0.1:1: nothing listens there
        var reader = database
        reader.user = role
        reader.password = "reader-secret-77"
        var badParameter = database
        badParameter.query = "sslmode=sometimes"
        let secret = try #require(database.password)
        // A server that never answers (a firewall that drops, a host that hangs): the kernel completes the
        // connection for the listening socket, nothing reads it, and libpq gives up after its connect_timeout.
        let silent = try SilentListener()
        defer { silent.close() }
        var silentServer = database
        silentServer.port = Int(silent.port)
        var unknownHost = database
        unknownHost.host = "no-such-host.invalid"
        let cases: [(url: String, says: String)] = [
            (wrongPassword.string!, "password authentication failed"),
            (closedPort.string!, "Connection refused"),
            (silentServer.string!, "timeout expired"),
            (unknownHost.string!, "could not translate host name"),
            (reader.string!, "permission denied for schema public"),
            (badParameter.string!, "sslmode"),
            ("postgresql://keiji:\(secret)@:5432", "DB_URL must be"),  // no host, no database: refused when read
        ]

        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for (bad, says) in cases {
            try setDatabaseURL(bad, in: s)
            let r = try await s.keiji(within: .seconds(90), "system", "--start")  // a hang is killed, and fails below
            let lines = r.stderr.split(separator: "\n")
            #expect(r.status != 0 && lines.count == 1 && r.stderr.hasPrefix("error: ") && r.stderr.contains("DB_URL") && r.stderr.contains(says),
                    "\(bad): \(r.stdout)\(r.stderr)")
            for password in [secret, "wrong-secret-42", "reader-secret-77"] {
                #expect(!r.stderr.contains(password) && !r.stdout.contains(password), "\(bad): the password is never shown")
            }
            #expect(pid(of: "bus", in: s) == nil && pid(of: "scheduler", in: s) == nil, "\(bad): no service was started")
        }
        #expect(try await psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0", "nothing half-created")

        // An offline command is refused before it is journaled, so nothing is lost or half-done either.
        try setDatabaseURL(reader.string!, in: s)
        let create = try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h")
        #expect(create.status != 0 && create.stderr.contains("DB_URL") && create.stderr.contains("permission denied"), "\(create.stderr)")
        try setDatabaseURL("default", in: s)
        let again = try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h")
        #expect(again.stdout.contains("journal LSN 1,"), "the refused command left no record: \(again.stdout)\(again.stderr)")
        await drop()
        _ = try? await psql(server.string!, "DROP ROLE IF EXISTS \(role)")
    }
}

/// A TCP socket on 127.0.0.1 that listens and never accepts or answers: a database server that hangs.
final class SilentListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound else {
            if fd >= 0 { _ = Glibc.close(fd) }
            throw POSIXError(.EADDRNOTAVAIL)
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() { _ = Glibc.close(fd) }
}
