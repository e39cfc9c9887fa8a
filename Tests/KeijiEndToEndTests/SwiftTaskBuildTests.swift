import Foundation
import KeijiCore
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What a `--build` leaves in `~/.keiji/exec/tasks` when it fails or meets a delete, and what it says about a task
/// program's `--schedule` output; the SDK's stop and failure paths, on a real task binary (see `WalkthroughTests`).
struct SwiftTaskBuildTests {
    typealias Session = WalkthroughTests.Session

    func write(_ text: String, task: String, file: String, in s: Session) throws {
        try text.write(toFile: s.home + "/keiji/tasks/\(task)/\(file)", atomically: true, encoding: .utf8)
    }

    func build(_ task: String, _ flags: String..., in s: Session) async throws -> Session.Result {
        try await s.run(["task", "--name=\(task)", "--build"] + flags)
    }

    func binaries(in s: Session) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: s.home + "/.keiji/exec/tasks")) ?? []).sorted()
    }

    /// A failed build left a `<task>.keiji-previous-<pid>` link each time (its rollback renamed a link over another
    /// name of the same file, which does nothing), and `--delete` left them. A `--delete --remove-source` during a
    /// build's compile had its removed binary put back by the build's rollback: the build now waits for the delete's
    /// lock before it installs, and installs nothing once the sources are gone.
    @Test func aFailedBuildLeavesTheBinariesAsTheyWereAndADeleteMeanwhileIsNotUndone() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=alpha", "--desc=a").status == 0)
        var r = try await build("alpha", in: s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(binaries(in: s) == ["alpha"])

        let function = s.home + "/keiji/tasks/alpha/function.swift"
        let good = try String(contentsOfFile: function, encoding: .utf8)
        try write("func function() async throws { undefinedCall() }\n", task: "alpha", file: "function.swift", in: s)
        r = try await build("alpha", in: s)
        #expect(r.status == 1 && r.stderr.hasSuffix("error: swift build failed for task alpha (exit 1); see the compiler output above\n"), "\(r.stderr)")
        #expect(binaries(in: s) == ["alpha"])

        // Refused after the compile, for its schedule.
        try write("import KeijiTaskKit\nlet schedule = Schedule.every(0).seconds\n", task: "alpha", file: "schedule.swift", in: s)
        try write(good, task: "alpha", file: "function.swift", in: s)
        r = try await build("alpha", in: s)
        #expect(r.status == 1 && r.stderr.contains("error: alpha's schedule or policies are invalid:"), "\(r.stderr)")
        #expect(binaries(in: s) == ["alpha"])

        // A delete during the build (here its steps, under the lock a delete takes).
        try write("import KeijiTaskKit\nlet schedule = Schedule.every(10).seconds\n", task: "alpha", file: "schedule.swift", in: s)
        let lock = open(s.home + "/.keiji/workspace-changes.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: s.binaries + "/keiji")
        process.arguments = ["task", "--name=alpha", "--build"]
        process.environment = s.environment
        let said = s.home + "/build.stderr"
        #expect(FileManager.default.createFile(atPath: said, contents: nil))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: said))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let waiting = "waiting for another keiji call (pid \(getpid())) that changes the workspace…"
        let deadline = ContinuousClock.now + .seconds(300)
        while process.isRunning, ContinuousClock.now < deadline, !((try? String(contentsOfFile: said, encoding: .utf8)) ?? "").contains(waiting) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(((try? String(contentsOfFile: said, encoding: .utf8)) ?? "").contains(waiting), "the build installed without the lock")
        try FileManager.default.removeItem(atPath: s.home + "/keiji/tasks/alpha")
        try FileManager.default.removeItem(atPath: s.home + "/.keiji/exec/tasks/alpha")
        close(lock)
        try await offThePool { process.waitUntilExit() }
        let stderr = try String(contentsOfFile: said, encoding: .utf8)
        #expect(process.terminationStatus == 1
                && stderr.hasSuffix("error: task alpha's sources were removed while it was building (a `keiji task --delete --remove-source`?): nothing installed or saved\n"),
                "\(stderr)")
        #expect(binaries(in: s) == [])

        // What a killed build leaves goes with the task's delete.
        for name in ["alpha", "alpha.keiji-previous-99999", "alpha.tmp-99999"] {
            #expect(FileManager.default.createFile(atPath: s.home + "/.keiji/exec/tasks/" + name, contents: Data("x".utf8)))
        }
        r = try await s.keiji("task", "--delete", "--name=alpha")
        #expect(r.status == 0 && r.stdout.contains("\nremoved its logs and binary; source kept in "), "\(r.stdout)\(r.stderr)")
        #expect(binaries(in: s) == [])
    }

    /// A build interrupted between its install and the scheduler's acknowledgement left `<task>.keiji-previous-<pid>`
    /// (a whole copy of the old binary), and later builds kept it until the task's delete. A build now removes what
    /// builds of the task that no longer run left, and keeps what one still running has.
    @Test func aBuildRemovesWhatInterruptedBuildsLeft() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=beta", "--desc=b").status == 0)
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        try await offThePool { ended.waitUntilExit() }
        let running = "beta.keiji-previous-\(getpid())"
        try FileManager.default.createDirectory(atPath: s.home + "/.keiji/exec/tasks", withIntermediateDirectories: true)
        for name in ["beta.keiji-previous-\(ended.processIdentifier)", "beta.tmp-\(ended.processIdentifier)", running] {
            #expect(FileManager.default.createFile(atPath: s.home + "/.keiji/exec/tasks/" + name, contents: Data("x".utf8)))
        }
        let r = try await build("beta", in: s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(binaries(in: s) == ["beta", running])
    }

    /// SIGTERM to the CLI alone during a build ended it and left `swift build` compiling on (Foundation's `Process`
    /// gives the child a group of its own, so a Ctrl-C at the terminal did not reach it either), and the next build
    /// waited for it. The signal is passed on to the build's group, the build waited for, and the CLI ends by the
    /// signal with one line. A `swift` on PATH stands in for the toolchain's: it and its "compiler" wait to be ended.
    @Test func aSignalToTheCLIEndsTheSwiftBuildItWaitsFor() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=gamma", "--desc=g").status == 0)
        let tools = s.home + "/fake-toolchain"
        try FileManager.default.createDirectory(atPath: tools, withIntermediateDirectories: true)
        try """
            #!/bin/sh
            exec >/dev/null 2>&1  # else a CLI that ended first left its stderr open
            echo $$ > "$HOME/swift.pid"
            sh -c 'echo $$ > "$HOME/compiler.pid.tmp"; mv "$HOME/compiler.pid.tmp" "$HOME/compiler.pid"; exec sleep 300'

            """.write(toFile: tools + "/swift", atomically: true, encoding: .utf8)
        #expect(chmod(tools + "/swift", 0o755) == 0)
        var environment = s.environment
        environment["PATH"] = tools + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        func pid(_ file: String) -> pid_t? {
            (try? String(contentsOfFile: s.home + "/" + file, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }

        // SIGTERM to the CLI alone (a `kill`, a supervisor), and SIGINT to its group (Ctrl-C at the terminal).
        for (signal, group) in [(SIGTERM, false), (SIGINT, true)] {
            for file in ["swift.pid", "compiler.pid"] { try? FileManager.default.removeItem(atPath: s.home + "/" + file) }
            let build = Process()
            build.executableURL = URL(fileURLWithPath: s.binaries + "/keiji")
            build.arguments = ["task", "--name=gamma", "--build"]
            build.environment = environment
            let err = Pipe()
            build.standardError = err
            build.standardOutput = FileHandle.nullDevice
            build.standardInput = FileHandle.nullDevice
            try build.run()
            #expect(await WalkthroughTests().eventually { pid("compiler.pid") != nil || !build.isRunning })
            let swift = try #require(pid("swift.pid")), compiler = try #require(pid("compiler.pid"))
            kill(group ? -build.processIdentifier : build.processIdentifier, signal)
            let stderr = try await offThePool { String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            try await offThePool { build.waitUntilExit() }
            #expect(build.terminationReason == .uncaughtSignal && build.terminationStatus == signal, "\(build.terminationStatus) \(stderr)")
            #expect(stderr.hasSuffix("\nerror: interrupted: swift build was stopped; nothing was installed or saved\n"), "\(stderr)")
            #expect(!LiveProcess.isRunning(swift), "the CLI ended before its swift build")
            let compilerEnded = await WalkthroughTests().eventually(.seconds(10)) { !LiveProcess.isRunning(compiler) }
            #expect(compilerEnded, "the build's compiler runs on")
            if !compilerEnded { kill(compiler, SIGKILL) }
            #expect(binaries(in: s) == [])
        }
    }

    /// One task program whose schedule and function follow `~/sdk-case`, so that one compile tries each case.
    static let schedule = """
        import Foundation
        import KeijiTaskKit
        let which = (try? String(contentsOfFile: ProcessInfo.processInfo.environment["HOME"]! + "/sdk-case", encoding: .utf8)) ?? ""
        let schedule: Schedule = {
            switch which {
            case "noise": fputs("warning: noise\\n", stderr); print("a debug line"); return Schedule.every(10).seconds
            case "garbage": print("not a schedule"); exit(0)
            case "infinite": return Schedule.every(10).seconds.timeout(.infinity)
            case "zero": return Schedule.every(10).seconds.timeout(0)
            case "negative": return Schedule.every(10).seconds.timeout(-3)
            case "five": return Schedule.every(5).seconds
            default: return Schedule.every(10).seconds.timeout(nil)
            }
        }()

        """
    static let function = """
        import KeijiTaskKit
        func function() async throws {
            switch which {
            case "partial":
                print("first", terminator: "")
                print("second", terminator: "")
                throw TaskError("after partial")
            case "sleep":
                defer { print("cleanup ran") }
                print("started")
                do { try await Task.sleep(nanoseconds: 120_000_000_000) } catch is CancellationError { print("saw CancellationError"); throw CancellationError() }
            default: print("ok")
            }
        }

        """

    /// `--schedule`'s stderr was read as part of its JSON ("The given data was not valid JSON." for any line on it),
    /// and so was the SDK's `inf`; the error quoted neither.
    /// A refused value was blamed on a flag nobody gave. `timeout(0)` meant no limit.
    /// A thrown error's `task failed:` line came before output printed earlier. A SIGTERM exited at once: no `defer`
    /// and no cancellation ran, and `grace` gave a Swift task nothing.
    @Test func theSDKsScheduleOutputFailuresAndStopAreReadAndSaidRight() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=sdk", "--desc=d").status == 0)
        try write(Self.schedule, task: "sdk", file: "schedule.swift", in: s)
        try write(Self.function, task: "sdk", file: "function.swift", in: s)
        func use(_ which: String) throws { try which.write(toFile: s.home + "/sdk-case", atomically: true, encoding: .utf8) }
        try use("plain")
        var r = try await build("sdk", in: s)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")

        try use("noise")
        r = try await build("sdk", in: s)
        #expect(r.status == 0 && r.stderr.contains("\nsdk --schedule said: warning: noise\n"), "\(r.stderr)")
        try use("garbage")
        r = try await build("sdk", in: s)
        #expect(r.status == 1 && r.stderr.hasSuffix("\nerror: sdk --schedule printed no schedule keiji can read (The given data was not valid JSON.): it printed \"not a schedule\"\n"), "\(r.stderr)")
        try use("infinite")
        r = try await build("sdk", in: s)
        #expect(r.status == 1 && r.stderr.hasSuffix("\nerror: sdk --schedule failed (exit 1): error: timeout(inf): not a finite number of seconds\n"), "\(r.stderr)")
        try use("zero")
        r = try await build("sdk", in: s)
        #expect(r.status == 1 && r.stderr.hasSuffix("\nerror: sdk --schedule failed (exit 1): error: timeout(0): a run needs more than 0 s (timeout(nil) for no time limit)\n"), "\(r.stderr)")
        try use("negative")
        r = try await build("sdk", in: s)
        #expect(r.status == 1 && r.stderr.contains("\nerror: sdk's schedule or policies are invalid: in schedule.swift: --timeout must be"), "\(r.stderr)")
        try use("plain")
        r = try await build("sdk", "--jitter", "8", in: s)
        #expect(r.status == 0, "\(r.stderr)")
        try use("five")
        r = try await build("sdk", in: s)
        #expect(r.status == 1 && r.stderr.contains("\nerror: sdk's schedule or policies are invalid: kept from the task's previous build: --jitter (8 s) must be shorter")
                && r.stderr.hasSuffix(" (--jitter 0 clears a kept jitter)\n"), "\(r.stderr)")
        r = try await build("sdk", "--jitter", "9", in: s)
        #expect(r.status == 1 && r.stderr.contains("invalid: --jitter (9 s) must be shorter"), "a flag given is named as before: \(r.stderr)")

        // The program itself, as the scheduler runs it: stdout and stderr into one file.
        func start(_ which: String) throws -> (Process, String) {
            try use(which)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: s.home + "/.keiji/exec/tasks/sdk")
            process.arguments = ["--run"]
            process.environment = s.environment
            let log = s.home + "/run-\(which).log"
            #expect(FileManager.default.createFile(atPath: log, contents: nil))
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            return (process, log)
        }
        func text(_ log: String) -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let (failing, log) = try start("partial")
        try await offThePool { failing.waitUntilExit() }
        #expect(failing.terminationStatus == 1 && text(log) == "firstsecondtask failed: after partial\n", "\(text(log))")

        let (process, stopped) = try start("sleep")
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning, ContinuousClock.now < deadline, !text(stopped).contains("started\n") { try await Task.sleep(for: .milliseconds(50)) }
        process.terminate()  // SIGTERM
        try await offThePool { process.waitUntilExit() }
        #expect(process.terminationReason == .exit && process.terminationStatus == 143, "\(process.terminationStatus)")
        #expect(text(stopped) == "started\nsaw CancellationError\ncleanup ran\n", "\(text(stopped))")
    }
}
