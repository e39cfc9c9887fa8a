import Foundation
import Testing

/// A new user's journey with Swift tasks, on the real binaries in a fresh HOME (see `WalkthroughTests`):
/// several tasks created, built, deleted and rebuilt in any order; their policies kept across rebuilds and
/// shown by `--get`; their output streamed into the log; a thrown message as the task's ErrorTxt.
struct SwiftTaskJourneyTests {
    typealias Session = WalkthroughTests.Session

    func eventually(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async -> Bool {
        await WalkthroughTests().eventually(timeout, condition)
    }

    func write(_ text: String, task: String, file: String, in s: Session) throws {
        try text.write(toFile: s.home + "/keiji/tasks/\(task)/\(file)", atomically: true, encoding: .utf8)
    }

    func build(_ task: String, _ flags: String..., in s: Session) async throws -> (WalkthroughTests.Session.Result, Duration) {
        let clock = ContinuousClock()
        var result: WalkthroughTests.Session.Result?
        let elapsed = try await clock.measure { result = try await s.run(["task", "--name=\(task)", "--build"] + flags) }
        return (result!, elapsed)
    }

    /// The values `--get` prints, by key.
    func fields(_ task: String, in s: Session) async throws -> [String: String] {
        var values: [String: String] = [:]
        for line in try await s.keiji("task", "--get", "--name=\(task)").stdout.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            values[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }

    /// A Swift task named after a toolchain module failed to build (`Swift`, `Glibc`), or built and then hid the
    /// toolchain's module from every later task's build, even once deleted (`Foundation`: "cannot find 'Date' in
    /// scope"); `a-b` and `a_b` make one module, and both failed. Refused at create; a folder made by hand is left
    /// out of the package, and its build refused with the reason. A command task may take any of these names.
    @Test func aSwiftTaskCannotTakeAToolchainModulesNameOrAnotherTasksModule() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["Swift", "foundation", "Dispatch", "dispatch", "Glibc", "XCTest"] {
            let r = try await s.keiji("task", "--create", "--name=\(name)", "--desc=x")
            #expect(r.status == 1 && r.stderr == "error: a Swift task cannot be named \(name): the Swift toolchain has a module of that name (in any case), which the task's module would clash with or hide from every task's build\n", "\(name): \(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks").isEmpty)
        #expect(try await s.keiji("task", "--create", "--name=a-b", "--desc=x").status == 0)
        let twin = try await s.keiji("task", "--create", "--name=a_b", "--desc=x")
        #expect(twin.status == 1 && twin.stderr.contains("a Swift task cannot be named a_b beside task a-b: their Swift modules would be one"), "\(twin.stderr)")
        #expect(try await s.keiji("task", "--create", "--name=testing", "--desc=x", "--command", "true", "--every", "1h").status == 0)

        try FileManager.default.copyItem(atPath: s.home + "/keiji/tasks/a-b", toPath: s.home + "/keiji/tasks/Foundation")
        let (refused, _) = try await build("Foundation", in: s)
        #expect(refused.status == 1 && refused.stderr.hasSuffix("error: a Swift task cannot be named Foundation: the Swift toolchain has a module of that name (in any case), which the task's module would clash with or hide from every task's build\n"), "\(refused.stderr)")
        let manifest = try String(contentsOfFile: s.home + "/keiji/Package.swift", encoding: .utf8)
        #expect(manifest.contains("\"a-b\",") && !manifest.contains("\"Foundation\","), "\(manifest)")
        try write("import Foundation\nfunc function() async throws { print(Date().timeIntervalSince1970 > 0) }\n", task: "a-b", file: "function.swift", in: s)
        let (built, _) = try await build("a-b", in: s)
        #expect(built.status == 0, "\(built.stderr)")
    }

    /// The seed's core flow, then some: SwiftPM caches the manifest's evaluation, so a manifest that listed
    /// `tasks/` when evaluated could never build a second task, nor anything after a source folder was removed.
    @Test func swiftTasksAreCreatedBuiltDeletedAndRebuiltInAnyOrderAndKeepTheirPolicies() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        // A workspace made by an older keiji: its manifest listed tasks/ at evaluation time. It is replaced.
        let manifestPath = s.home + "/keiji/Package.swift"
        let older = "// swift-tools-version: 5.9\nimport PackageDescription\nlet package = Package(name: \"keiji-workspace\")\n"
        try older.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        for name in ["alpha", "beta", "gamma"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=\(name) task").status == 0)
        }
        // What the user adds outside the markers stays.
        let handle = try #require(FileHandle(forWritingAtPath: manifestPath))
        handle.seekToEndOfFile()
        handle.write(Data("// my own line\n".utf8))
        try handle.close()
        for name in ["alpha", "beta", "gamma"] {
            let (r, took) = try await build(name, in: s)
            #expect(r.status == 0, "\(name): \(r.stdout)\(r.stderr)")
            print("swift task \(name) built in \(took)")  // the first build compiles the SDK; later ones take seconds
        }
        var r = try await s.keiji("task", "--delete", "--name=beta", "--remove-source")
        #expect(r.status == 0, "\(r.stderr)")
        for name in ["gamma", "alpha"] {
            let (r, _) = try await build(name, in: s)
            #expect(r.status == 0, "after deleting beta, \(name): \(r.stdout)\(r.stderr)")
        }
        // A name that was deleted comes back, and a task created last builds too.
        #expect(try await s.keiji("task", "--create", "--name=beta", "--desc=beta again").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=delta", "--desc=delta task").status == 0)
        for name in ["delta", "beta"] {
            let (r, _) = try await build(name, in: s)
            #expect(r.status == 0, "\(name): \(r.stdout)\(r.stderr)")
        }
        #expect(try String(contentsOfFile: manifestPath + ".old", encoding: .utf8) == older)
        let manifest = try String(contentsOfFile: manifestPath, encoding: .utf8)
        #expect(manifest.contains("\"alpha\",\n    \"beta\",\n    \"delta\",\n    \"gamma\","), "\(manifest)")
        #expect(manifest.hasSuffix("// my own line\n"))

        // Policies: the SDK's, then the CLI's over them; the zone applies to the Swift task's schedule.
        try write("import KeijiTaskKit\nlet schedule = Schedule.on(.monday).at(\"09:00\").catchUp(.skip).retries(1)\n",
                  task: "alpha", file: "schedule.swift", in: s)
        var (built, _) = try await build("alpha", "--timeout", "5", "--retries", "2", "--time-zone", "Europe/Paris", in: s)
        #expect(built.status == 0, "\(built.stdout)\(built.stderr)")
        var f = try await fields("alpha", in: s)
        #expect(f["Timeout"] == "5s" && f["Retries"] == "2" && f["CatchUp"] == "skip" && f["TimeZone"] == "Europe/Paris", "\(f)")
        var paris = Calendar(identifier: .gregorian)
        paris.timeZone = try #require(TimeZone(identifier: "Europe/Paris"))
        let monday = try #require(paris.nextDate(after: Date(), matching: DateComponents(hour: 9, minute: 0, weekday: 2), matchingPolicy: .nextTime))
        let next = try #require(f["NextExecutionTime"].flatMap { ISO8601DateFormatter().date(from: $0) }, "\(f)")
        #expect(next == monday, "Monday 09:00 in Paris, not in UTC: \(f["NextExecutionTime"] ?? "")")

        // A plain rebuild keeps what the flags set, except where the program restates its own value (its
        // retries); an explicit flag changes only what it names.
        (built, _) = try await build("alpha", in: s)
        #expect(built.status == 0, "\(built.stdout)\(built.stderr)")
        f = try await fields("alpha", in: s)
        #expect(f["Timeout"] == "5s" && f["Retries"] == "1" && f["CatchUp"] == "skip" && f["TimeZone"] == "Europe/Paris", "\(f)")
        (built, _) = try await build("alpha", "--timeout", "none", "--overlap", "allow", in: s)
        #expect(built.status == 0, "\(built.stdout)\(built.stderr)")
        f = try await fields("alpha", in: s)
        #expect(f["Timeout"] == "none" && f["Overlap"] == "allow" && f["Retries"] == "1" && f["TimeZone"] == "Europe/Paris", "\(f)")
        r = try await s.keiji("task", "--get", "--name=alpha", "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let policy = try #require(object["Policy"] as? [String: Any], "\(r.stdout)")
        #expect(object["TimeZone"] as? String == "Europe/Paris" && policy["retries"] as? Int == 1 && policy["overlap"] as? String == "allow")
        // A limit for a catch-up that is not `all` (here the program's `skip`) would do nothing: refused, nothing saved.
        (built, _) = try await build("alpha", "--catch-up-limit", "3", in: s)
        #expect(built.status == 1 && built.stderr.hasSuffix("error: --catch-up-limit 3 has no effect with catch-up skip: it bounds --catch-up all (give that too, or leave the limit out)\n"),
                "\(built.stdout)\(built.stderr)")
        #expect(try await fields("alpha", in: s)["CatchUpLimit"] == "10")

        // Command tasks take the same flags at --create; a Swift task's --create refuses them (they would be lost).
        r = try await s.keiji("task", "--create", "--name=tick", "--desc=x", "--command", "true", "--every", "1h", "--continue-on-error", "true",
                        "--jitter", "7", "--catch-up", "all", "--catch-up-limit", "3", "--grace", "2", "--rerun-interrupted", "false")
        #expect(r.status == 0, "\(r.stderr)")
        f = try await fields("tick", in: s)
        #expect(f["ContinueOnError"] == "true" && f["Jitter"] == "7s" && f["CatchUp"] == "all" && f["CatchUpLimit"] == "3", "\(f)")
        #expect(f["Grace"] == "2s" && f["RerunInterrupted"] == "false" && f["TimeZone"]?.hasSuffix("(TIME_ZONE)") == true, "\(f)")
        r = try await s.keiji("task", "--create", "--name=epsilon", "--desc=x", "--timeout", "5")
        #expect(r.status != 0 && r.stderr.contains("--build"), "\(r.stderr)")
    }

    /// A rebuild of a task in error or disabled says what the task waits for: with `--restart` it said "no run in
    /// progress: the new build runs from its next slot", and it did not run until --resolve or --enable.
    @Test func aRebuildOfATaskInErrorOrDisabledSaysWhatItWaitsFor() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=held", "--desc=held").status == 0)
        try write("import KeijiTaskKit\nlet schedule = Schedule.every(1).hours\n", task: "held", file: "schedule.swift", in: s)
        try write("import KeijiTaskKit\nfunc function() async throws {\n    throw TaskError(\"boom\")\n}\n", task: "held", file: "function.swift", in: s)
        var (r, _) = try await build("held", in: s)
        #expect(r.status == 0 && !r.stdout.contains("runs again once"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--run", "--name=held").status == 0)
        #expect(await eventually { try await fields("held", in: s)["IsError"] == "true" })

        (r, _) = try await build("held", "--restart", in: s)
        #expect(r.status == 0 && r.stdout.hasSuffix("\nno run in progress\ntask held is in error: it runs again once resolved (keiji task --resolve --name=held)\n"),
                "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("task", "--disable", "--name=held").status == 0)
        (r, _) = try await build("held", in: s)
        #expect(r.status == 0 && r.stdout.hasSuffix(
            "\ntask held is disabled and in error: it runs again once enabled and resolved (keiji task --enable --name=held, then --resolve)\n"),
                "\(r.stdout)\(r.stderr)")
        for flag in ["--resolve", "--enable"] { #expect(try await s.keiji("task", flag, "--name=held").status == 0) }
        (r, _) = try await build("held", "--restart", in: s)
        #expect(r.status == 0 && r.stdout.hasSuffix("\nno run in progress: the new build runs from its next slot\n"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A rebuild takes the description from the task's `.env`, and keeps the saved one when the file or its
    /// TASK_DESCRIPTION is gone (it saved ""); `--build --desc`, which was ignored, is refused: the `.env` is the place.
    /// A build without a `.env` says nothing of it (SwiftPM warned `Invalid Exclude '…/.env'` at every build), also
    /// in a workspace whose manifest an older keiji wrote with that exclude.
    @Test func aRebuildKeepsTheDescriptionTheEnvDoesNotGive() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=described", "--desc=first words").status == 0)
        func rebuiltDescription() async throws -> String? {
            let (r, _) = try await build("described", in: s)
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            #expect(!r.stderr.contains("Invalid Exclude"), "a task needs no .env: \(r.stderr)")
            return try await fields("described", in: s)["Description"]
        }
        #expect(try await rebuiltDescription() == "first words")
        // The manifest as an older keiji wrote it, which excluded .env (on a line of its own, 26 spaces in, as
        // `keiji init` of the base build writes it): the next build takes the exclude out.
        let manifest = s.home + "/keiji/Package.swift"
        let current = try String(contentsOfFile: manifest, encoding: .utf8)
        let generated = #", path: "tasks/\(name)")"#
        #expect(current.contains(generated), "\(current)")
        try current.replacingOccurrences(of: generated, with: #", path: "tasks/\(name)","# + "\n" + String(repeating: " ", count: 26) + #"exclude: [".env"])"#)
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: s.home + "/keiji/tasks/described/.env")
        #expect(try await rebuiltDescription() == "first words", "no .env")
        #expect(try !String(contentsOfFile: manifest, encoding: .utf8).contains("exclude"))
        try write("TASK_NAME=described\n", task: "described", file: ".env", in: s)
        #expect(try await rebuiltDescription() == "first words", "no TASK_DESCRIPTION")
        try write("TASK_DESCRIPTION=\"second words\"\n", task: "described", file: ".env", in: s)
        #expect(try await rebuiltDescription() == "second words", "the .env's")

        let (r, _) = try await build("described", "--desc", "third words", in: s)
        #expect(r.status == 64 && r.stdout.isEmpty
                && r.stderr == "error: --desc goes with --create, not --build: a Swift task's description is TASK_DESCRIPTION in its .env, read at each build (see 'keiji task --help')\n",
                "\(r.status) \(r.stdout)\(r.stderr)")
        #expect(try await fields("described", in: s)["Description"] == "second words")

        // A `.env` that cannot be read is refused with its reason, as the scheduler refuses it (it read as empty).
        let dotEnv = s.home + "/keiji/tasks/described/.env"
        try FileManager.default.removeItem(atPath: dotEnv)
        try FileManager.default.createDirectory(atPath: dotEnv, withIntermediateDirectories: false)
        let (unreadable, _) = try await build("described", in: s)
        #expect(unreadable.status == 1 && unreadable.stderr == "error: cannot read \(dotEnv): Is a directory\n", "\(unreadable.status) \(unreadable.stdout)\(unreadable.stderr)")
        #expect(try await fields("described", in: s)["Description"] == "second words")
    }

    /// Output of a Swift task reaches its log line by line while it runs and survives --stop; a thrown
    /// message becomes the task's ErrorTxt and follows the task's own earlier output in the log; a crash's
    /// `Fatal error:` line is in its ErrorTxt.
    @Test func swiftTaskOutputStreamsAndAThrownMessageIsTheErrorText() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["slow", "boom", "crash"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=\(name)").status == 0)
            try write("import KeijiTaskKit\nlet schedule = Schedule.every(1).hours\n", task: name, file: "schedule.swift", in: s)
        }
        try write("func function() async throws {\n    print(\"working on it\")\n    try await Task.sleep(for: .seconds(60))\n}\n",
                  task: "slow", file: "function.swift", in: s)
        try write("import KeijiTaskKit\nfunc function() async throws {\n    print(\"before the failure\")\n    throw TaskError(\"boom\")\n}\n",
                  task: "boom", file: "function.swift", in: s)
        try write("func function() async throws {\n    print(\"working\")\n    fatalError(\"boom\")\n}\n", task: "crash", file: "function.swift", in: s)
        for name in ["slow", "boom", "crash"] {
            let (r, _) = try await build(name, in: s)
            #expect(r.status == 0, "\(name): \(r.stdout)\(r.stderr)")
        }
        #expect(try await s.keiji("system", "--start").status == 0)

        func log(_ task: String) async throws -> String { try await s.keiji("task", "--logs", "--name=\(task)").stdout }
        #expect(try await s.keiji("task", "--run", "--name=slow").status == 0)
        #expect(await eventually { try await log("slow").contains("working on it") }, "the line is in the log while the run goes on")
        #expect(await eventually { try await fields("slow", in: s)["IsRunning"] == "true" }, "the run (60 s) is still going")
        #expect(try await s.keiji("task", "--stop", "--name=slow").status == 0)
        #expect(await eventually { try await log("slow").contains("stopped") })
        #expect(try await log("slow").components(separatedBy: "working on it").count == 2, "still there, once, after the stop")

        #expect(try await s.keiji("task", "--run", "--name=boom").status == 0)
        #expect(await eventually { try await fields("boom", in: s)["IsError"] == "true" })
        #expect(try await fields("boom", in: s)["ErrorTxt"] == "[ task error ]: boom (exit status 1)")
        let text = try await log("boom")
        let before = try #require(text.range(of: "before the failure"), "\(text)")
        let failed = try #require(text.range(of: "task failed: boom"), "\(text)")
        #expect(before.lowerBound < failed.lowerBound, "the task's own output comes first: \(text)")

        // A crash's ErrorTxt has the runtime's message, not only the signal (4 on x86_64, 5 on arm64).
        #expect(try await s.keiji("task", "--run", "--name=crash").status == 0)
        #expect(await eventually { try await fields("crash", in: s)["IsError"] == "true" })
        let crashText = try await fields("crash", in: s)["ErrorTxt"] ?? ""
        #expect(crashText.hasPrefix("[ task error ]: crash/function.swift:3: Fatal error: boom (killed by signal "), "\(crashText)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }
}
