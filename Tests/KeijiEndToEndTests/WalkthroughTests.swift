import Foundation
import Testing

/// The seed's walkthrough against the real binaries (`keiji`, `keiji-bus`, `keiji-scheduler`,
/// `keiji-spawn-server`) in a temporary HOME (the bus on Unix sockets in it): init → create → get → start → status →
/// logs → disable → enable → delete → stop → uninstall, with command tasks (no Swift build, to stay fast).
struct WalkthroughTests {
    final class Session: @unchecked Sendable {
        let home: String
        let environment: [String: String]
        let binaries: String
        /// A command `keiji` runs under (e.g. `setpriv` to run it as another user); none by default.
        var launcher: [String] = []

        /// A fresh HOME whose bus uses the default transport, Unix sockets in that HOME's `~/.keiji`, so
        /// sessions running side by side never compete for a port (random TCP ports collided with other
        /// tests' connections). `tcpPorts` puts the bus on 127.0.0.1 instead, for tests about ports. `binaries` is
        /// where `keiji` and the services are (default: the ones built with the tests).
        init(tcpPorts: (push: UInt16, pull: UInt16)? = nil, binaries: String? = nil) throws {
            home = FileManager.default.temporaryDirectory.path + "/keiji-e2e-" + UUID().uuidString.prefix(8)
            try FileManager.default.createDirectory(atPath: home + "/tmp", withIntermediateDirectories: true)
            var env = ProcessInfo.processInfo.environment
            env["HOME"] = home
            // SwiftPM (`keiji task --build`) leaves its lock files in the temporary directory, named after the
            // paths it locks: three per HOME, hundreds in /tmp after a suite. In the HOME they go with it.
            env["TMPDIR"] = home + "/tmp"
            env["NO_COLOR"] = "1"
            env["KEIJI_BUS_PUSH_PORT"] = tcpPorts.map { String($0.push) }
            env["KEIJI_BUS_PULL_PORT"] = tcpPorts.map { String($0.pull) }
            environment = env
            self.binaries = try binaries ?? #require(Self.binaryDirectory(), "the keiji executables are built with the tests")
        }

        static func binaryDirectory() -> String? {
            let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            let build = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/debug")
            return [bundle, bundle.deletingLastPathComponent(), build].map(\.path).first {
                FileManager.default.isExecutableFile(atPath: $0 + "/keiji") && FileManager.default.isExecutableFile(atPath: $0 + "/keiji-scheduler")
            }
        }

        struct Result {
            var status: Int32
            var stdout: String
            var stderr: String
        }

        @discardableResult
        func keiji(_ arguments: String...) async throws -> Result { try await run(arguments) }

        /// `keiji` terminated if it is still running after `limit`: a call that could hang fails its test
        /// instead of holding the suite.
        func keiji(within limit: Duration, _ arguments: String...) async throws -> Result {
            try await offThePool { try self.runBlocking(arguments, killedAfter: limit) }
        }

        /// Runs the CLI on a thread of its own: waiting for a process on the cooperative pool (two threads
        /// on a 2-core machine) starved every other async test in the process, the bus tests' fake
        /// schedulers included, for as long as a `keiji system --start` took under load.
        func run(_ arguments: [String]) async throws -> Result {
            try await offThePool { try self.runBlocking(arguments) }
        }

        func runBlocking(_ arguments: [String], killedAfter limit: Duration? = nil) throws -> Result {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: launcher.first ?? binaries + "/keiji")
            process.arguments = launcher.isEmpty ? arguments : Array(launcher.dropFirst()) + [binaries + "/keiji"] + arguments
            process.environment = environment
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
            if let limit { DispatchQueue.global().asyncAfter(deadline: .now() + Double(limit.components.seconds), execute: killer) }
            defer { killer.cancel() }
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return Result(status: process.terminationStatus, stdout: stdout, stderr: stderr)
        }

        /// Sets `key` in `~/keiji/settings.conf`: its line replaced (or added), the file 0600 as `keiji init` makes it.
        func setSetting(_ key: String, _ value: String) throws {
            let file = home + "/keiji/settings.conf"
            var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let index = lines.firstIndex(where: { $0.hasPrefix(key + "=") }) { lines[index] = "\(key)=\(value)" } else { lines.append("\(key)=\(value)") }
            try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o600)
        }

        func cleanUp() {
            launcher = []
            _ = try? runBlocking(["system", "--stop"])
            try? FileManager.default.removeItem(atPath: home)
        }
    }

    func eventually(_ timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return (try? await condition()) == true
    }

    @Test func theWalkthroughWithCommandTasks() async throws {
        try await walkthroughWithCommandTasks(databaseURL: "default")
    }

    /// Steps 1–12 of the seed with command tasks, the view where `databaseURL` puts it (``PostgresViewTests`` runs
    /// it on PostgreSQL).
    func walkthroughWithCommandTasks(databaseURL: String) async throws {
        let s = try Session()
        defer { s.cleanUp() }

        // 1. init: idempotent, never overwrites settings.
        var r = try await s.keiji("init")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.home + "/keiji/settings.conf"))
        let token = try FileManager.default.attributesOfItem(atPath: s.home + "/.keiji/bus.token")
        #expect((token[.posixPermissions] as? Int) == 0o600)
        let settingsFile = try FileManager.default.attributesOfItem(atPath: s.home + "/keiji/settings.conf")
        #expect((settingsFile[.posixPermissions] as? Int) == 0o600, "DB_URL may hold a password")
        try "# mine\nDB_URL=\(databaseURL)\nTIME_ZONE=UTC\nROTATE_LOGS=1\nLOG_MAX_SIZE=1MB\n".write(toFile: s.home + "/keiji/settings.conf", atomically: true, encoding: .utf8)
        r = try await s.keiji("init")
        let settingsText = try String(contentsOfFile: s.home + "/keiji/settings.conf", encoding: .utf8)
        #expect(r.status == 0 && settingsText.hasPrefix("# mine"), "init never overwrites settings")

        // 2. create a command task while nothing runs: written offline into the journal.
        r = try await s.keiji("task", "--create", "--name=ping", "--desc=says ping", "--command", "echo ping from $TASK_NAME", "--every", "1s")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("written offline"))

        // 4. get: the seed's block.
        r = try await s.keiji("task", "--get", "--name=ping")
        #expect(r.status == 0 && r.stdout.contains("TaskModel:") && r.stdout.contains("Name: ping") && r.stdout.contains("Type: HMS"))
        #expect(r.stdout.contains("Schedule: units:seconds,interval:1") && r.stdout.contains("IsDisabled: false"))

        // 5. start: both services, detached.
        r = try await s.keiji("system", "--start")
        #expect(r.status == 0 && r.stdout.contains("bus: started") && r.stdout.contains("scheduler: started"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--start")
        #expect(r.stdout.contains("already running"))

        // 6. status: services and the recovery report of the first start.
        #expect(await eventually { try await s.keiji("system", "--status").stdout.contains("first start") })
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("bus                ONLINE") && r.stdout.contains("scheduler          ONLINE"), "\(r.stdout)")

        // 7. logs: the task ran and its output is in its log.
        #expect(await eventually { try await s.keiji("task", "--logs", "--name=ping").stdout.contains("ping from ping") })

        // A command while running goes through the bus and is acknowledged by the scheduler.
        r = try await s.keiji("task", "--disable", "--name=ping")
        #expect(r.status == 0 && r.stdout.contains("acknowledged by the scheduler"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually { try await s.keiji("task", "--get", "--name=ping").stdout.contains("IsDisabled: true") })
        r = try await s.keiji("task", "--enable", "--name=ping")
        #expect(r.status == 0 && r.stdout.contains("acknowledged by the scheduler"))

        // A failing task sets the error flag; resolve clears it.
        r = try await s.keiji("task", "--create", "--name=broken", "--desc=fails", "--command", "exit 3", "--every", "1s")
        #expect(r.status == 0)
        #expect(await eventually { try await s.keiji("task", "--get", "--name=broken").stdout.contains("IsError: true") })
        #expect(try await s.keiji("task", "--get", "--name=broken").stdout.contains("ErrorTxt: [ task error ]: exit status 3"))
        #expect(try await s.keiji("task", "--resolve", "--name=broken").status == 0)

        // delete removes definition and logs; the name can be reused (the original could not).
        r = try await s.keiji("task", "--delete", "--name=broken")
        #expect(r.status == 0)
        #expect(try await s.keiji("task", "--get", "--name=broken").status != 0)
        #expect(try await s.keiji("task", "--create", "--name=broken", "--desc=again", "--command", "true", "--every", "1h", "--force").status == 0)

        // journal tools
        r = try await s.keiji("journal", "verify")
        #expect(r.status == 0 && r.stdout.contains("ok"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("journal", "dump", "--task", "ping")
        #expect(r.status == 0 && r.stdout.contains("task.saved") && r.stdout.contains("run.finished"))

        // stop: both services, then the status says so.
        r = try await s.keiji("system", "--stop")
        #expect(r.status == 0 && r.stdout.contains("scheduler: stopped") && r.stdout.contains("bus: stopped"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("bus                OFFLINE") && r.stdout.contains("scheduler          OFFLINE"))

        // uninstall: refuses to delete anything without --yes when it cannot ask.
        r = try await s.keiji("system", "--uninstall")
        #expect(r.status != 0 && r.stderr.contains("--yes"))
        #expect(FileManager.default.fileExists(atPath: s.home + "/keiji/settings.conf") && FileManager.default.fileExists(atPath: s.home + "/.keiji"))
        #expect(try await s.keiji("system", "--uninstall", "--yes").status == 0)
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji"))
        #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji"))
    }

    /// Steps 2–3 and 12 of the seed with a real Swift task: create from templates, build (swift build of the
    /// workspace package, schedule read from the binary), run, rebuild with --restart.
    @Test func theSwiftTaskWalkthrough() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(FileManager.default.fileExists(atPath: s.home + "/keiji/Package.swift"))
        // The SDK keiji ships is exactly Sources/KeijiTaskKit (re-run scripts/embed-taskkit after editing it).
        let shipped = try String(contentsOfFile: s.home + "/keiji/sdk/Sources/KeijiTaskKit/KeijiTaskKit.swift", encoding: .utf8)
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/KeijiTaskKit/KeijiTaskKit.swift")
        #expect(shipped == (try String(contentsOf: source, encoding: .utf8)), "run scripts/embed-taskkit")

        var r = try await s.keiji("task", "--create", "--name=ping_google", "--desc=pings google")
        #expect(r.status == 0, "\(r.stderr)")
        let folder = s.home + "/keiji/tasks/ping_google"
        for file in ["main.swift", "function.swift", "schedule.swift", ".env"] {
            #expect(FileManager.default.fileExists(atPath: folder + "/" + file), "\(file)")
        }
        try "func function() async throws { print(\"pinged from build one\") }\n".write(toFile: folder + "/function.swift", atomically: true, encoding: .utf8)

        r = try await s.keiji("task", "--name=ping_google", "--build")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("units:seconds,interval:10"))
        r = try await s.keiji("task", "--get", "--name=ping_google")
        #expect(r.stdout.contains("Executable: " + s.home + "/.keiji/exec/tasks/ping_google") && r.stdout.contains("Description: pings google"))

        // Rebuild with a 1-second schedule while the scheduler runs: applied at once.
        #expect(try await s.keiji("system", "--start").status == 0)
        try "import KeijiTaskKit\nlet schedule = Schedule.every(1).seconds\n".write(toFile: folder + "/schedule.swift", atomically: true, encoding: .utf8)
        r = try await s.keiji("task", "--name=ping_google", "--build", "--restart")
        #expect(r.status == 0 && r.stdout.contains("acknowledged by the scheduler"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually() { try await s.keiji("task", "--logs", "--name=ping_google").stdout.contains("pinged from build one") })

        // A task whose function throws fails its run, and the message reaches the log.
        try "struct Broken: Error {}\nfunc function() async throws { throw Broken() }\n".write(toFile: folder + "/function.swift", atomically: true, encoding: .utf8)
        #expect(try await s.keiji("task", "--name=ping_google", "--build", "--restart").status == 0)
        #expect(await eventually() { try await s.keiji("task", "--get", "--name=ping_google").stdout.contains("IsError: true") })
        #expect(try await s.keiji("task", "--logs", "--name=ping_google").stdout.contains("task failed: Broken()"))
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// Damage to acknowledged journal data: verify names it, the scheduler refuses to start and says why,
    /// and the operator's explicit recovery mode gets it going with the repair in the status.
    @Test func aCorruptedJournalWaitsForTheOperatorsChoice() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["one", "two", "three"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }
        let journal = s.home + "/.keiji/journal"
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: journal).sorted().first { $0.hasSuffix(".jnl") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: journal + "/" + segment))
        bytes[4096 + 60] ^= 0x20  // inside the first record's frame, which later frames vouch for
        try bytes.write(to: URL(fileURLWithPath: journal + "/" + segment))

        var r = try await s.keiji("journal", "verify")
        #expect(r.status != 0 && r.stdout.contains("corruption: \(segment) at offset 4096"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--start")
        #expect(r.status != 0 && r.stderr.contains("journal corruption") && r.stderr.contains("--recovery-mode"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--start", "--recovery-mode", "pointInTime")
        #expect(r.status == 0 && r.stdout.contains("scheduler: started"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually { try await s.keiji("system", "--status").stdout.contains("corruptionTruncated") })
        #expect(try await s.keiji("journal", "verify").status == 0, "the repaired journal verifies")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    @Test func everyErrorExitsNonZeroWithOneLine() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("task", "--get").status != 0, "no workspace yet")
        #expect(try await s.keiji("init").status == 0)
        let cases: [[String]] = [
            ["task", "--create", "--name=../etc", "--desc=x", "--command", "true", "--every", "1s"],
            ["task", "--create", "--name=a b", "--desc=x", "--command", "true", "--every", "1s"],
            ["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--every", "0s"],
            ["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--cron", "61 * * * *"],
            ["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--on", "someday", "--at", "10:00PM"],
            ["task", "--create", "--name=ok", "--command", "true", "--every", "1s"],
            ["task", "--disable", "--name=missing"],
            ["task", "--name=x"],
            ["system", "--logs"],
            ["journal", "export", "not-a-segment", "/tmp/x.lz4"],
        ]
        for arguments in cases {
            let result = try await s.run(arguments)
            #expect(result.status != 0, "\(arguments) must fail")
            #expect(result.stderr.hasPrefix("error: ") && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        // A value that starts with '-' is the option's value, refused for what it is (ArgumentParser took it for a
        // flag and said the value was missing): a usage error, as every value wrong whatever the workspace holds.
        let dashed: [(arguments: [String], saying: String)] = [
            (["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--every", "-1s"], #"invalid interval "-1s""#),
            (["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--cron", "-1 * * * *"], #"minute field "-1""#),
            (["task", "--create", "--name", "-ok", "--desc=x", "--command", "true", "--every", "1s"], "-ok"),
        ]
        for (arguments, saying) in dashed {
            let result = try await s.run(arguments)
            #expect(result.status == 64 && result.stderr.hasPrefix("error: ") && result.stderr.contains(saying)
                    && result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        // Command lines ArgumentParser refuses before anything runs: one line as well, with where to look, status 64.
        let refused: [(arguments: [String], help: String)] = [
            (["task", "--bogus"], "keiji task --help"),
            (["task"], "keiji task --help"),
            (["task", "--name=x"], "keiji task --help"),
            (["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--every", "1s", "--overlap", "maybe"], "keiji task --help"),
            (["task", "--create", "--name=ok", "--desc=x", "--command", "true", "--every", "1s", "--retries", "abc"], "keiji task --help"),
            (["nosuch"], "keiji --help"),
        ]
        for (arguments, help) in refused {
            let result = try await s.run(arguments)
            #expect(result.status == 64, "\(arguments): \(result.status)")
            #expect(result.stderr.hasPrefix("error: ") && result.stderr.split(separator: "\n").count == 1
                    && result.stderr.contains("(see '\(help)')"), "\(arguments): \(result.stderr)")
        }
        try "TIME_ZONE=Mars/Olympus\n".write(toFile: s.home + "/keiji/settings.conf", atomically: true, encoding: .utf8)
        let bad = try await s.run(["task", "--get"])
        #expect(bad.status != 0 && bad.stderr.contains("TIME_ZONE") && bad.stderr.contains("settings.conf"))
    }
}

/// Runs blocking work (a child process and its pipes) on a new thread and suspends until it is done, so the
/// cooperative pool stays free for the other tests running in parallel.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "e2e blocking work"
        thread.start()
    }
}
