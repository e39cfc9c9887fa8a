import Foundation
import KeijiCore
import KeijiJournal
import KeijiTestSupport
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji system` against the real binaries in a temporary HOME on random bus ports (the walkthrough's
/// `Session`): start waits for readiness or the refusal's reason, stop and status whatever the settings say,
/// uninstall asks before deleting, and task IDs survive scheduler restarts.
struct SystemCommandTests {
    typealias Session = WalkthroughTests.Session

    func eventually(_ timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async -> Bool {
        await WalkthroughTests().eventually(timeout, condition)
    }

    func pid(of service: String, in s: Session) throws -> pid_t? {
        let text = try? String(contentsOfFile: s.home + "/.keiji/exec/services/\(service).pid", encoding: .utf8)
        return text?.split(separator: " ").first.flatMap { pid_t($0) }
    }

    /// Not exited: a zombie counts as gone (`kill(pid, 0)` succeeds for it until its parent reaps it).
    func isAlive(_ pid: pid_t) -> Bool { LiveProcess.isRunning(pid) }

    /// `ID: <n>` of `keiji task --get --name=<name>`.
    func taskID(_ name: String, _ s: Session) async throws -> String? {
        try await s.keiji("task", "--get", "--name=\(name)").stdout.split(separator: "\n").first { $0.hasPrefix("ID: ") }.map { String($0.dropFirst(4)) }
    }

    func taskIDs(_ names: [String], _ s: Session) async throws -> [String?] {
        var ids: [String?] = []
        for name in names { ids.append(try await taskID(name, s)) }
        return ids
    }

    /// Appends `count` copies of the journal's first record (a `task.saved`), so the next start replays them all:
    /// a recovery that takes seconds, as a long-lived journal's does.
    func growJournal(_ s: Session, by count: Int) async throws {
        var options = JournalOptions()
        options.durability = .none
        let journal = try Journal.open(directory: s.home + "/.keiji/journal", options: options)
        var first: [UInt8] = []
        try journal.contents.forEachRecord(from: 1, through: 1) { _, bytes in first = Array(bytes) }
        #expect(!first.isEmpty)
        for _ in 0..<(count / 1000) { _ = try await journal.append(contentsOf: Array(repeating: first, count: 1000)) }
        try await journal.close()
    }

    @Test func startReturnsOnlyOnceTheSchedulerAcceptsWork() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        try await growJournal(s, by: 150_000)

        let r = try await s.keiji("system", "--start")
        #expect(r.status == 0 && r.stdout.contains("scheduler: started"), "\(r.stdout)\(r.stderr)")
        // Straight after the start returns, without waiting: the recovery of this start is done and reported,
        // and a command reaches the scheduler through the bus.
        let status = try await s.keiji("system", "--status", "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], "\(status.stdout)")
        let recovery = try #require(object["recovery"] as? [String: Any], "the recovery report is written before start returns")
        #expect((recovery["journal"] as? [String: Any])?["recordsReplayed"] as? Int == 150_001)
        #expect(((object["services"] as? [String: Any])?["scheduler"] as? [String: Any])?["status"] as? String == "ONLINE")
        let disable = try await s.keiji("task", "--disable", "--name=ping")
        #expect(disable.status == 0 && disable.stdout.contains("acknowledged by the scheduler"), "\(disable.stdout)\(disable.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A scheduler that dies while recovering (killed here; a crash is the same) is reported with how it
    /// died, not as "started" and not as "exited at once (status 0)".
    @Test func aSchedulerThatDiesWhileStartingIsReportedWithHowItDied() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        try await growJournal(s, by: 150_000)

        let start = Process()
        start.executableURL = URL(fileURLWithPath: s.binaries + "/keiji")
        start.arguments = ["system", "--start"]
        start.environment = s.environment
        let err = Pipe()
        start.standardError = err
        start.standardOutput = FileHandle.nullDevice
        start.standardInput = FileHandle.nullDevice
        try start.run()
        // Polled on a thread of its own, not with `eventually`: a resumption that waits for a busy cooperative
        // pool could come after the recovery is over (and blocking a pool thread here would starve the
        // other tests running in parallel).
        let pidFile = s.home + "/.keiji/exec/services/scheduler.pid"
        let scheduler = try await offThePool { () -> pid_t? in
            var scheduler: pid_t?
            let deadline = Date().addingTimeInterval(30)
            while scheduler == nil, Date() < deadline {
                let text = try? String(contentsOfFile: pidFile, encoding: .utf8)
                scheduler = text?.split(separator: " ").first.flatMap { pid_t($0) }
                if scheduler == nil { usleep(5_000) }
            }
            if let scheduler { kill(scheduler, SIGKILL) }
            return scheduler
        }
        _ = try #require(scheduler, "the scheduler was started")
        let stderr = try await offThePool { () -> String in
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            start.waitUntilExit()
            return text
        }
        #expect(start.terminationStatus != 0)
        #expect(stderr.hasPrefix("error: keiji-scheduler was killed by signal 9 while starting") && stderr.split(separator: "\n").count == 1, "\(stderr)")
        #expect(try pid(of: "scheduler", in: s) == nil)
    }

    @Test func aStrictStartOnADamagedJournalExitsNonZeroWithTheReason() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["one", "two"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }
        let journal = s.home + "/.keiji/journal"
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: journal).sorted().first { $0.hasSuffix(".jnl") })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: journal + "/" + segment))
        bytes[4096 + 60] ^= 0x20  // inside the first record's frame, which later frames vouch for
        try bytes.write(to: URL(fileURLWithPath: journal + "/" + segment))

        let r = try await s.keiji("system", "--start")
        #expect(r.status != 0, "\(r.stdout)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && r.stderr.hasPrefix("error: keiji-scheduler refused to start: journal corruption in \(segment)"), "\(r.stderr)")
        #expect(r.stderr.contains("--recovery-mode"))
        #expect(try pid(of: "scheduler", in: s) == nil, "no pid file is left for a scheduler that refused")
        #expect(try await s.keiji("system", "--status").stdout.contains("scheduler          OFFLINE"))
    }

    /// Below the descriptor floor each service refuses to start with one line: the scheduler started and was killed
    /// by libdispatch (SIGILL) a few seconds later, once its thread monitor could not open a /proc file.
    @Test func aDescriptorLimitBelowTheFloorRefusesTheStart() async throws {
        var s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        s.launcher = ["/bin/sh", "-c", #"ulimit -n 100 && exec "$0" "$@""#]
        for (service, flag) in [("keiji-bus", "--bus"), ("keiji-scheduler", "--scheduler")] {
            let r = try await s.keiji("system", "--start", flag)
            #expect(r.status == 1 && r.stderr == "error: \(service) refused to start: the descriptor limit (ulimit -n) is 100: \(service) "
                    + "needs at least 256; raise it and start again\n", "\(r.stderr)")
        }
        #expect(try pid(of: "bus", in: s) == nil && pid(of: "scheduler", in: s) == nil)
    }

    /// An install without keiji-spawn-server beside the scheduler: every run would fail, each with a line in a log
    /// nobody reads at `system --start` (a benchmark fired none of 15,000 runs so, its start reported fine). The
    /// scheduler refuses to start and says why, in one line.
    @Test func aSchedulerWithoutItsSpawnHelperRefusesToStart() async throws {
        let built = try #require(Session.binaryDirectory())
        let install = FileManager.default.temporaryDirectory.path + "/keiji-install-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: install, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: install) }
        try await ExecutableFiles.copy(["keiji", "keiji-bus", "keiji-scheduler"].map { built + "/" + $0 }, to: install)
        let s = try Session(binaries: install)
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let r = try await s.keiji("system", "--start")
        #expect(r.status != 0, "\(r.stdout)")
        #expect(r.stderr.hasPrefix("error: keiji-scheduler refused to start: cannot start \(install)/keiji-spawn-server: ")
                && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try pid(of: "scheduler", in: s) == nil)
        let log = try String(contentsOfFile: s.home + "/.keiji/logs/services/scheduler/scheduler.log", encoding: .utf8)
        #expect(log.components(separatedBy: "cannot start \(install)/keiji-spawn-server: ").count == 2, "the log says it once: \(log)")
        // The bus this start brought up for it is stopped again: a failed start leaves nothing running.
        #expect(r.stdout.hasSuffix("bus: stopped (keiji-scheduler did not start)\n"), "\(r.stdout)")
        #expect(try pid(of: "bus", in: s) == nil)
    }

    /// A service started by `keiji system --start` logs each line once, with its time: what it prints on stdout for
    /// someone running it by hand (`keiji-scheduler started …`, `keiji-bus listening on …`) is not copied in as well.
    @Test func serviceLogsHaveEachLineOnceWithItsTime() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("system", "--stop").status == 0)
        for service in ["bus", "scheduler"] {
            let r = try await s.keiji("system", "--logs", "--\(service)")
            let lines = r.stdout.split(separator: "\n")
            #expect(r.status == 0 && lines.count >= 2, "\(r.stdout)\(r.stderr)")
            for line in lines {
                #expect(ISO8601.milliseconds(from: String(line.prefix(24))) != nil && line.dropFirst(24).first == " ", "\(service): \(line)")
            }
            #expect(lines.contains { $0.contains(service == "bus" ? "keiji-bus listening on " : "scheduler started (pid ") }, "\(r.stdout)")
        }
    }

    /// A service whose log rolls as it starts keeps its stderr (where a crash's message goes) on the new log file:
    /// it wrote into the rolled file, which the roll deletes.
    @Test func aServiceLogRolledAtStartKeepsTheServicesStderr() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try s.setSetting("LOG_MAX_SIZE", "1KB")
        for service in ["bus", "scheduler"] {  // each log over the size before the start
            let folder = s.home + "/.keiji/logs/services/\(service)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try String(repeating: "an old line of the service's log\n", count: 100).write(toFile: folder + "/\(service).log", atomically: true, encoding: .utf8)
        }
        #expect(try await s.keiji("system", "--start").status == 0)
        for service in ["bus", "scheduler"] {
            let pid = try #require(try pid(of: service, in: s))
            let folder = s.home + "/.keiji/logs/services/\(service)"
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder).contains { $0.hasSuffix(".log.lz4") }, "\(service)'s log rolled")
            let standardError = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/2")
            #expect(standardError == folder + "/\(service).log", "\(service)'s stderr: \(standardError)")
        }
        // The scheduler's spawn helper, started before the roll, holds no rolled file either.
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        let helpers = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
            return stat.contains("(keiji-spawn-ser)") && stat[stat.index(close, offsetBy: 2)...].split(separator: " ").dropFirst().first == "\(scheduler)"
        }
        #expect(helpers.count == 1, "\(helpers)")
        for helper in helpers {
            let held = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(helper)/fd")
                .compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(helper)/fd/\($0)") }
            #expect(!held.contains { $0.hasSuffix("(deleted)") }, "the helper holds \(held)")
        }
    }

    @Test func aBusThatCannotListenSaysWhyAndNothingIsLeftRunning() async throws {
        // Both of the bus's ports are held, so whichever it binds first is refused.
        let push = try LoopbackSocket.listening(), pull = try LoopbackSocket.listening()
        defer { close(push.fd); close(pull.fd) }
        let port = push.port
        let s = try Session(tcpPorts: (push.port, pull.port))
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let r = try await s.keiji("system", "--start")
        #expect(r.status != 0 && !r.stdout.contains("started"), "\(r.stdout)")
        #expect(r.stderr.hasPrefix("error: keiji-bus refused to start: ") && (r.stderr.contains("\(port)") || r.stderr.contains("\(pull.port)")) && r.stderr.split(separator: "\n").count == 1,
                "\(r.stderr)")
        #expect(try pid(of: "bus", in: s) == nil && pid(of: "scheduler", in: s) == nil, "the scheduler is not started after the bus refused")
    }

    /// `keiji arguments` of session `s` started and left running, its output on pipes (a test that signals it as it runs).
    func launched(_ arguments: [String], in s: Session) throws -> (Process, out: Pipe, err: Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: s.binaries + "/keiji")
        process.arguments = arguments
        process.environment = s.environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    /// The services of one session by their processes, whatever the pid files say: each process of `binary` whose
    /// environment has the session's `HOME`.
    func processes(_ binary: String, of s: Session) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix(binary) == true,
                  let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environment.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "HOME=" + s.home } && isAlive(pid)
        }
    }

    /// Two `system --start` at once start one bus and one scheduler, both in the pid files: the refused start of a
    /// second bus removed the first's pid file, and that bus ran on where `--status` and `--stop` could not see it.
    @Test func twoStartsAtOnceLeaveOneOfEachServiceThatStopStops() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for round in 1...3 {
            async let first = s.keiji("system", "--start")
            async let second = s.keiji("system", "--start")
            let (a, b) = try await (first, second)
            #expect(a.status == 0 && b.status == 0, "round \(round): \(a.stdout)\(a.stderr) | \(b.stdout)\(b.stderr)")
            let busPIDs = processes("keiji-bus", of: s), schedulerPIDs = processes("keiji-schedul", of: s)
            #expect(busPIDs.count == 1 && schedulerPIDs.count == 1, "round \(round): buses \(busPIDs), schedulers \(schedulerPIDs)")
            #expect(try busPIDs == [pid(of: "bus", in: s)].compactMap { $0 } && schedulerPIDs == [pid(of: "scheduler", in: s)].compactMap { $0 },
                    "round \(round): the pid files name the running services")
            let status = try await s.keiji("system", "--status")
            #expect(status.stdout.contains("bus                ONLINE") && status.stdout.contains("scheduler          ONLINE"), "\(status.stdout)")
            #expect(try await s.keiji("system", "--stop").status == 0)
            #expect(await eventually { processes("keiji-bus", of: s).isEmpty && processes("keiji-schedul", of: s).isEmpty },
                    "round \(round): --stop leaves nothing running")
        }
    }

    /// A query view on a PostgreSQL server that cannot be reached (a closed port) leaves the tasks unknown: `--status`
    /// fails as `task --list` does, one line naming DB_URL and exit 1, the text form after its services. It said
    /// `"tasks": []` (and `no tasks`) with a warning, exit 0: a script read that the journal's task was gone.
    @Test func statusFailsWhenThePostgresViewCannotBeReached() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=kept", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        try s.setSetting("DB_URL", "postgresql://keiji@127.0.0.1:1/keiji")  // nothing listens on port 1
        for arguments in [["system", "--status", "--json"], ["task", "--list", "--json"], ["system", "--status"]] {
            let r = try await s.run(arguments)
            let lines = r.stderr.split(separator: "\n")
            #expect(r.status == 1 && lines.count == 1 && r.stderr.hasPrefix("error: ") && r.stderr.contains("DB_URL")
                    && r.stderr.contains("Connection refused"), "\(arguments): \(r.stdout)\(r.stderr)")
            #expect(!r.stdout.contains("\"tasks\"") && !r.stdout.contains("no tasks"), "\(arguments): \(r.stdout)")
        }
        let text = try await s.keiji("system", "--status")
        #expect(text.stdout.contains("======== SERVICES ========") && text.stdout.contains("OFFLINE"), "the services are said first: \(text.stdout)")
    }

    /// A scheduler that stopped because its journal failed (a full disk) was only `OFFLINE`: `--status` now says why,
    /// from the line its log ends with, until a later start or stop.
    @Test func statusSaysTheSchedulerStoppedBecauseItsJournalFailed() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let log = s.home + "/.keiji/logs/services/scheduler/scheduler.log"
        try FileSystem.createDirectory(s.home + "/.keiji/logs/services/scheduler")
        let reason = "cannot append to the journal (\(s.home)/.keiji/journal/seg-00000000000000000001-0000000000000001.jnl): No space left on device"
        let lines = ["scheduler started (pid 1): 0 tasks, recovery took 0.001 s", "FATAL: the journal failed, stopping all work: " + reason,
                     "stopping: 0 runs in progress", JournalFailureStop.logLine(reason)]
        try lines.enumerated().map { "2026-12-07T08:25:2\($0.offset).000Z \($0.element)\n" }.joined().write(toFile: log, atomically: true, encoding: .utf8)

        var r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("scheduler          OFFLINE            stopped 2026-12-07T08:25:23.000Z after its journal failed: \(reason) (fix that, then keiji system --start)"),
                "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--status", "--json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let scheduler = (json["services"] as? [String: Any])?["scheduler"] as? [String: Any]
        #expect(scheduler?["stopped"] as? String == "stopped 2026-12-07T08:25:23.000Z after its journal failed: \(reason)", "\(r.stdout)")

        try (lines.map { "2026-12-07T08:25:20.000Z \($0)\n" }.joined() + "2026-12-07T08:26:00.000Z scheduler started (pid 2): 0 tasks\n"
             + "2026-12-07T08:27:00.000Z scheduler stopped cleanly\n").write(toFile: log, atomically: true, encoding: .utf8)
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("scheduler          OFFLINE           \n") && !r.stdout.contains("journal failed"), "a later clean stop: \(r.stdout)")
    }

    /// A scheduler that does not end after SIGTERM (SIGSTOPped here; a stop waiting on something that hangs) is
    /// killed after the stop's 30 s, and the stop says so and fails: it said "stopped" and exited 0, though the
    /// scheduler left no clean stop and its next start recovers as after a crash.
    @Test func aSchedulerKilledByTheStopIsSaidAndFailsTheStop() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        kill(scheduler, SIGSTOP)
        let r = try await s.keiji(within: .seconds(60), "system", "--stop")
        #expect(r.status == 1 && r.stdout.contains("scheduler: killed") && r.stdout.contains("bus: stopped"), "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("warning: keiji-scheduler (pid \(scheduler)) had not stopped 30 s after SIGTERM and was killed (SIGKILL)")
                && r.stderr.contains("error: keiji-scheduler did not stop in time and had to be killed (SIGKILL)"), "\(r.stderr)")
        #expect(!isAlive(scheduler))
    }

    @Test func stopAndStatusWorkWhateverTheSettingsSay() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        let bus = try #require(try pid(of: "bus", in: s))
        let settings = s.home + "/keiji/settings.conf"
        let text = try String(contentsOfFile: settings, encoding: .utf8)
        let bad = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("ROTATE_LOGS=") ? "ROTATE_LOGS=2" : String($0) }.joined(separator: "\n")
        #expect(bad.contains("ROTATE_LOGS=2"))
        try bad.write(toFile: settings, atomically: true, encoding: .utf8)

        var r = try await s.keiji("system", "--status")
        #expect(r.status == 0 && r.stdout.contains("scheduler          ONLINE") && r.stdout.contains("bus                ONLINE"), "\(r.stdout)\(r.stderr)")
        // The warning goes to stderr, as every other: on stdout a `--status | grep` read it as status.
        #expect(r.stderr.hasPrefix("warning:") && r.stderr.contains("ROTATE_LOGS") && !r.stdout.contains("warning"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--start")
        #expect(r.status != 0 && r.stderr.contains("ROTATE_LOGS"), "start still refuses bad settings")
        r = try await s.keiji("system", "--restart")
        #expect(r.status != 0 && r.stderr.contains("ROTATE_LOGS"))
        #expect(isAlive(scheduler) && isAlive(bus), "a refused restart stops nothing")
        r = try await s.keiji("system", "--logs", "--scheduler")
        #expect(r.status == 0 && r.stdout.contains("scheduler started (pid "), "\(r.stdout)\(r.stderr)")

        r = try await s.keiji("system", "--stop")
        #expect(r.status == 0 && r.stdout.contains("scheduler: stopped") && r.stdout.contains("bus: stopped"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually { !isAlive(scheduler) && !isAlive(bus) })
    }

    /// `mv ~/.keiji ~/.keiji.bak` (or `rm -rf ~/.keiji`) under running services: with their pid files and sockets gone
    /// no keiji command reached them, `--stop` said "was not running", and the scheduler fired the old workspace's
    /// tasks beside the next one's and wrote its clean-stop checkpoint into the new journal. Both now stop on their own,
    /// saying why in the log they were started with.
    @Test func servicesWhoseWorkspaceFolderIsMovedAwayStopOnTheirOwn() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        let bus = try #require(try pid(of: "bus", in: s))
        let moved = s.home + "/.keiji.moved"
        #expect(rename(s.home + "/.keiji", moved) == 0)

        #expect(await eventually(.seconds(30)) { !isAlive(scheduler) && !isAlive(bus) }, "both stop once ~/.keiji is gone")
        for service in ["scheduler", "bus"] {
            let log = try String(contentsOfFile: moved + "/logs/services/\(service)/\(service).log", encoding: .utf8)
            // "replaced" when a line the other service logged by path made ~/.keiji anew in between.
            #expect(log.contains("keiji-\(service): stopping: \(s.home)/.keiji was ") && log.contains("no keiji command can reach this \(service) any more"), "\(log)")
        }
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji/journal"), "the stop made no journal at the old path")
        // The moved workspace is whole: started again in place, it recovers after a clean stop with its task.
        try? FileManager.default.removeItem(atPath: s.home + "/.keiji")
        #expect(rename(moved, s.home + "/.keiji") == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("after a clean shutdown") && r.stdout.contains("ping"), "\(r.stdout)\(r.stderr)")
    }

    /// Pid files deleted under running services (a temp-file cleaner): `--status` said OFFLINE, `--stop` "was not
    /// running" (exit 0) and `--restart` failed on the bus's socket, while both ran and took commands. They are found by
    /// what they hold, the journal's lock and the bus's socket.
    @Test func servicesWhosePidFilesWereDeletedAreStillSeenAndStopped() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        let bus = try #require(try pid(of: "bus", in: s))
        func removePIDFiles() throws {
            for service in ["scheduler", "bus"] { try FileManager.default.removeItem(atPath: s.home + "/.keiji/exec/services/\(service).pid") }
        }

        try removePIDFiles()
        var r = try await s.keiji("system", "--status")
        #expect(r.status == 0 && r.stdout.contains("scheduler          ONLINE") && r.stdout.contains("bus                ONLINE"), "\(r.stdout)\(r.stderr)")
        #expect(try pid(of: "scheduler", in: s) == scheduler && pid(of: "bus", in: s) == bus, "the pid files are written again")

        try removePIDFiles()
        r = try await s.keiji("system", "--stop")
        #expect(r.status == 0 && r.stdout.contains("scheduler: stopped") && r.stdout.contains("bus: stopped"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually { !isAlive(scheduler) && !isAlive(bus) })
    }

    /// A pid file a run replaced with a FIFO is taken for none: opened blocking, it held `--status`, `--start` and
    /// `--stop` for ever with the services stopped. With them running, they are found by what they hold and the pid
    /// files written again.
    @Test func pidFilesMadeFIFOsAreTakenForNoneNotWaitedOn() async throws {
        let s = try Session()
        defer {
            // The clean-up's stop, unbounded, is not left to wait on a FIFO when the test fails.
            for service in ["scheduler", "bus"] { unlink(s.home + "/.keiji/exec/services/\(service).pid") }
            s.cleanUp()
        }
        #expect(try await s.keiji("init").status == 0)
        func makeFIFOs() throws {
            for service in ["scheduler", "bus"] {
                let path = s.home + "/.keiji/exec/services/\(service).pid"
                unlink(path)
                #expect(mkfifo(path, 0o600) == 0)
            }
        }
        try makeFIFOs()
        var r = try await s.keiji(within: .seconds(60), "system", "--status")
        #expect(r.status == 0 && r.stdout.contains("scheduler          OFFLINE") && r.stdout.contains("bus                OFFLINE"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji(within: .seconds(120), "system", "--start")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        let bus = try #require(try pid(of: "bus", in: s))
        try makeFIFOs()
        r = try await s.keiji(within: .seconds(60), "system", "--status")
        #expect(r.status == 0 && r.stdout.contains("scheduler          ONLINE") && r.stdout.contains("bus                ONLINE"), "\(r.stdout)\(r.stderr)")
        #expect(try pid(of: "scheduler", in: s) == scheduler && pid(of: "bus", in: s) == bus, "the pid files are written again")
        r = try await s.keiji(within: .seconds(120), "system", "--stop")
        #expect(r.status == 0 && r.stdout.contains("scheduler: stopped") && r.stdout.contains("bus: stopped"), "\(r.stdout)\(r.stderr)")
    }

    /// An edit of TIME_ZONE while the scheduler runs is said, in one line on stderr, by --list, --get and --status: the
    /// list showed times in the new zone while the scheduler fired by the old one, without a word. A restart applies it;
    /// until then `--get` gives the scheduler's zone, the one in effect.
    @Test func aTimeZoneTheRunningSchedulerDoesNotUseIsWarnedOf() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let settings = s.home + "/keiji/settings.conf"
        func setZone(_ zone: String) throws {
            let text = try String(contentsOfFile: settings, encoding: .utf8)
            try text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix("TIME_ZONE=") ? "TIME_ZONE=\(zone)" : String($0) }
                .joined(separator: "\n").write(toFile: settings, atomically: true, encoding: .utf8)
        }
        try setZone("UTC")
        #expect(try await s.keiji("task", "--create", "--name=z", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let calls = [["task", "--list"], ["task", "--get", "--name=z"], ["task", "--list", "--json"], ["system", "--status"]]
        for call in calls {
            let r = try await s.run(call)
            #expect(r.status == 0 && r.stderr.isEmpty, "\(call): \(r.stderr)")
        }
        try setZone("Asia/Tokyo")
        let warning = "warning: settings.conf's TIME_ZONE is Asia/Tokyo but the running scheduler uses UTC (times here are in Asia/Tokyo); "
            + "restart it to apply: keiji system --restart\n"
        for call in calls {
            let r = try await s.run(call)
            #expect(r.status == 0 && r.stderr == warning, "\(call): \(r.stderr)")
        }
        // `--get` gives the zone in effect, the scheduler's (it gave the edited one, which no run used yet).
        func zone() async throws -> String? {
            let got = try await s.keiji("task", "--get", "--name=z", "--json").stdout
            return (try JSONSerialization.jsonObject(with: Data(got.utf8)) as? [String: Any])?["TimeZone"] as? String
        }
        #expect(try await zone() == "UTC")
        #expect(try await s.keiji("task", "--get", "--name=z").stdout.contains("\nTimeZone: UTC (TIME_ZONE)\n"))
        #expect(try await s.keiji("system", "--restart").status == 0)
        #expect(try await zone() == "Asia/Tokyo")
        for call in calls {
            let r = try await s.run(call)
            #expect(r.status == 0 && r.stderr.isEmpty, "after the restart, \(call): \(r.stderr)")
        }
        #expect(try await s.keiji("system", "--stop").status == 0)
        try setZone("UTC")
        #expect(try await s.keiji("task", "--list").stderr.isEmpty, "no scheduler, nothing to warn of")
    }

    /// A command sent while the scheduler runs but its link to a bus that just started is still connecting (the
    /// link retries every 2 s at most) waits for the link and reaches the scheduler. It used to fail: the bus
    /// answered "no scheduler", and the journal, held by the scheduler, refused the offline path.
    /// The bus settings or bus.token changed under running services: a command cannot reach the running bus, and the
    /// advice is the restart that helps, saying why. It was "start the bus with `keiji system --start --bus`", which
    /// only says "already running".
    @Test func busSettingsOrATokenChangedUnderRunningServicesAdviseARestart() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let settings = s.home + "/keiji/settings.conf"
        let original = try String(contentsOfFile: settings, encoding: .utf8)
        let (push, pull) = (try MetricsEndpointTests.freePort(), try MetricsEndpointTests.freePort())
        try (original + "\nBUS_TRANSPORT=tcp\nBUS_PUSH_PORT=\(push)\nBUS_PULL_PORT=\(pull)\n")
            .replacingOccurrences(of: "\nBUS_TRANSPORT=unix", with: "\n")
            .replacingOccurrences(of: "\nBUS_PUSH_PORT=8005", with: "\n").replacingOccurrences(of: "\nBUS_PULL_PORT=8006", with: "\n")
            .write(toFile: settings, atomically: true, encoding: .utf8)
        var r = try await s.keiji("task", "--disable", "--name=ping")
        #expect(r.status == 1 && r.stderr.contains("is not at 127.0.0.1:\(push): settings.conf's BUS_TRANSPORT or bus ports differ from the running bus's")
                && r.stderr.hasSuffix("keiji system --restart\n") && !r.stderr.contains("--start --bus"), "\(r.stderr)")

        try original.write(toFile: settings, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: s.home + "/.keiji/bus.token")
        #expect(try await s.keiji("init").status == 0, "a new bus.token")
        r = try await s.keiji("task", "--disable", "--name=ping")
        #expect(r.status == 1 && r.stderr.contains("does not accept \(s.home)/.keiji/bus.token, which changed since the services started")
                && r.stderr.hasSuffix("keiji system --restart\n") && !r.stderr.contains("--start --bus"), "\(r.stderr)")
        #expect(try await s.keiji("system", "--restart").status == 0)
        #expect(try await s.keiji("task", "--disable", "--name=ping").status == 0, "the restart helps")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A workspace whose settings.conf alone was deleted was reported as "no workspace at ~/keiji".
    @Test func aMissingSettingsFileIsNamed() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try FileManager.default.removeItem(atPath: s.home + "/keiji/settings.conf")
        let r = try await s.keiji("task", "--list")
        #expect(r.status == 1 && r.stderr == "error: \(s.home)/keiji/settings.conf is missing; `keiji init` writes a default one "
                + "(it keeps the workspace's tasks)\n", "\(r.stderr)")
    }

    /// The recovery report's file deleted under a running scheduler: --status said "the scheduler has not started yet".
    @Test func aRunningSchedulersMissingRecoveryReportIsSaid() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        try FileManager.default.removeItem(atPath: s.home + "/.keiji/recovery.json")
        let r = try await s.keiji("system", "--status")
        #expect(r.status == 0 && r.stdout.contains("no report: \(s.home)/.keiji/recovery.json is missing or unreadable (the scheduler, pid ")
                && !r.stdout.contains("has not started yet"), "\(r.stdout)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    @Test func aCommandWaitsForTheSchedulersLinkToABusStartedAfterIt() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        var r = try await s.keiji("system", "--start", "--scheduler")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        // The scheduler is stopped (SIGSTOP) until the command has said it waits: its link cannot connect to the bus
        // before, so the command finds the bus without a scheduler however fast or slow the machine (the window
        // this test is about: a fixed pause before the command let the link win the race on some runs).
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        #expect(kill(scheduler, SIGSTOP) == 0)
        defer { kill(scheduler, SIGCONT) }
        r = try await s.keiji("system", "--start", "--bus")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let stderr = s.home + "/stderr"
        func said() -> String { (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "" }
        s.launcher = UnwritableOutputTests.redirecting("2>>" + stderr)
        async let disabling = s.keiji(within: .seconds(120), "task", "--disable", "--name=ping")
        let waited = await eventually(.seconds(60)) { said().contains("the scheduler is running but not connected to keiji-bus yet; waiting for it…") }
        s.launcher = []
        #expect(kill(scheduler, SIGCONT) == 0)
        r = try await disabling
        #expect(waited, "the command waited for the scheduler's link: \(said())")
        #expect(r.status == 0 && r.stdout.contains("acknowledged by the scheduler"), "\(r.stdout)\(said())")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// An option the action does not take is a usage error naming both (exit 64), as in `keiji task`, and so is no
    /// action or two (they exited 1, without the hint): it was ignored (`--status --recovery-mode salvage` showed the status, `--start --yes` started the services).
    @Test func anOptionTheActionDoesNotTakeIsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let cases: [([String], String)] = [
            (["--status", "--recovery-mode", "salvage"], "--recovery-mode goes with --start or --restart, not --status"),
            (["--stop", "--recovery-mode", "strict"], "--recovery-mode goes with --start or --restart, not --stop"),
            (["--start", "--yes"], "--yes goes with --uninstall, not --start"),
            (["--start", "--json"], "--json goes with --status, not --start"),
            (["--uninstall", "--json"], "--json goes with --status, not --uninstall"),
            (["--status", "--bus"], "--bus goes with --start, --stop, --restart or --logs, not --status"),
            (["--uninstall", "--yes", "--scheduler"], "--scheduler goes with --start, --stop, --restart or --logs, not --uninstall"),
            (["--stop", "--lines", "100"], "--lines goes with --logs, not --stop"),
            (["--start", "--recovery-mode", "salvag"], "--recovery-mode takes strict, pointInTime or salvage (got salvag)"),
            (["--restart", "--bus", "--recovery-mode", "salvage"], "--recovery-mode is the scheduler's: not with --bus alone"),
            ([], "say what to do: --start, --stop, --restart, --status, --logs or --uninstall"),
            (["--start", "--stop"], "give one action at a time"),
        ]
        for (arguments, text) in cases {
            let r = try await s.run(["system"] + arguments)
            #expect(r.status == 64 && r.stdout.isEmpty && r.stderr == "error: \(text) (see 'keiji system --help')\n", "\(arguments): \(r.status) \(r.stdout)\(r.stderr)")
        }
        #expect(try pid(of: "bus", in: s) == nil && FileManager.default.fileExists(atPath: s.home + "/keiji"), "nothing refused ran")
        for arguments in [["--stop", "--scheduler"], ["--status", "--json"], ["--logs", "--bus", "--lines", "5"]] {
            let r = try await s.run(["system"] + arguments)
            #expect(r.status == 0, "\(arguments): \(r.stdout)\(r.stderr)")
        }
        // A mode for a scheduler already running would be ignored: refused, with the restart that applies it.
        #expect(try await s.keiji("system", "--start").status == 0)
        let r = try await s.keiji("system", "--start", "--recovery-mode", "salvage")
        #expect(r.status == 1 && r.stderr.contains("the scheduler is already running") && r.stderr.contains("keiji system --restart --recovery-mode salvage"),
                "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    @Test func uninstallAsksBeforeDeletingAndStopsTheServicesFirst() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let scheduler = try #require(try pid(of: "scheduler", in: s))

        // No terminal to ask on and no --yes: refuses before touching anything.
        var r = try await s.keiji("system", "--uninstall")
        #expect(r.status != 0 && r.stderr.contains("--yes") && r.stderr.split(separator: "\n").count == 1, "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.home + "/.keiji/journal") && FileManager.default.fileExists(atPath: s.home + "/keiji/settings.conf"))
        #expect(isAlive(scheduler) && !r.stdout.contains("stopped"), "nothing was stopped either")

        r = try await s.keiji("system", "--uninstall", "--yes")
        #expect(r.status == 0 && r.stdout.contains("scheduler: stopped") && r.stdout.contains("deleted \(s.home)/.keiji"), "\(r.stdout)\(r.stderr)")
        #expect(await eventually { !isAlive(scheduler) })
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji") && !FileManager.default.fileExists(atPath: s.home + "/keiji"))

        r = try await s.keiji("system", "--uninstall", "--yes")
        #expect(r.status == 0 && !r.stdout.contains("deleted") && r.stdout.contains("nothing to remove"), "\(r.stdout)\(r.stderr)")
        // A stop where nothing was ever installed makes no ~/.keiji (its services lock lives there).
        r = try await s.keiji("system", "--stop")
        #expect(r.status == 0 && r.stdout.contains("was not running"), "\(r.stdout)\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji"), "a stop created ~/.keiji")
    }

    /// Ctrl-D at the uninstall's question (end of input on a terminal, `script`'s pseudo-terminal here) asked the next
    /// question on the same line, said `nothing deleted` and exited 0, the shell's prompt glued to it. It ends the
    /// line, deletes nothing and fails with one line.
    @Test func anUninstallQuestionAnsweredWithEndOfInputDeletesNothingAndFails() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        s.launcher = ["/bin/sh", "-c", #"exec script -qec "$*" /dev/null"#, "script"]
        let r = try await s.keiji("system", "--uninstall")
        // The terminal's output, stderr with it, comes out on script's stdout, each line ended by \r\n.
        #expect(r.status == 1 && r.stdout == "delete \(s.home)/.keiji (the journal, logs and built tasks)? [y/N] \r\n"
                + "error: no answer (end of input): nothing was deleted\r\n", "\(r.stdout.debugDescription)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.home + "/.keiji/journal") && FileManager.default.fileExists(atPath: s.home + "/keiji/settings.conf"))
    }

    /// `init` over a `~/.keiji` others may write in makes it 0700 and says so, and says the mode it has: it said
    /// "mode 0700" of a `drwxrwxrwx` one, and kept it so.
    @Test func initMakesASystemFolderOthersCanWriteInPrivateAndSaysItsMode() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let folder = s.home + "/.keiji"
        #expect(mkdir(folder, 0o700) == 0 && chmod(folder, 0o777) == 0)
        var r = try await s.keiji("init")
        #expect(r.status == 0 && r.stderr.contains("warning: \(folder) was mode 0777, writable by others: made 0700\n")
                && r.stdout.contains("\(folder) (journal, db, logs; mode 0700;"), "\(r.stdout)\(r.stderr)")
        #expect(chmod(folder, 0o750) == 0)
        r = try await s.keiji("init")
        #expect(r.status == 0 && !r.stderr.contains("warning") && r.stdout.contains("(journal, db, logs; mode 0750;"), "\(r.stdout)\(r.stderr)")
    }

    /// `~/keiji` as a link: the uninstall removes the link, keeps what it points to, and says so (it said "deleted").
    @Test func uninstallOfALinkedWorkspaceSaysOnlyTheLinkWent() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let target = s.home + "/elsewhere"
        try FileManager.default.moveItem(atPath: s.home + "/keiji", toPath: target)
        try FileManager.default.createSymbolicLink(atPath: s.home + "/keiji", withDestinationPath: target)
        let r = try await s.keiji("system", "--uninstall", "--yes")
        #expect(r.status == 0 && r.stdout.contains("removed the link \(s.home)/keiji (→ \(target)); its target was kept")
                && !r.stdout.contains("deleted \(s.home)/keiji"), "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: target + "/settings.conf") && !FileManager.default.fileExists(atPath: s.home + "/keiji"))
    }

    @Test func taskIDsSurviveSchedulerRestartsAndARecreatedTaskGetsANewOne() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["b", "a", "c"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }
        let started = try await s.keiji("system", "--start")
        #expect(started.status == 0, "\(started.stdout)\(started.stderr)")
        let before = try await taskIDs(["a", "b", "c"], s)
        #expect(before == ["2", "1", "3"], "numbered in creation order")
        for _ in 0..<2 {
            let r = try await s.keiji("system", "--restart", "--scheduler")
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            #expect(try await taskIDs(["a", "b", "c"], s) == before)
        }
        // Not its exit status: deleting a task that never ran reports a missing log folder (h6's lane).
        try await s.keiji("task", "--delete", "--name=c")
        #expect(await eventually { try await s.keiji("task", "--get", "--name=c").status != 0 }, "deleted")
        #expect(try await s.keiji("task", "--create", "--name=c", "--desc=again", "--command", "true", "--every", "1h", "--force").status == 0)
        #expect(await eventually { try await taskID("c", s) == "4" }, "a task created again gets a new ID")
        #expect(try await s.keiji("system", "--restart", "--scheduler").status == 0)
        #expect(try await taskIDs(["a", "b", "c"], s) == ["2", "1", "4"])
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// `system --status` words each task's last run as `task --list` does: a run a signal ended says which (it said
    /// `last failed`), and a success no longer adds ` (exit 0)`; `--json`'s `last` is the same text.
    @Test func statusWordsTheLastRunAsListDoes() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let tasks = ["crasher": "kill -4 $$", "failer": "exit 3", "fine": "true"]
        for (name, command) in tasks {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", command, "--every", "1h").status == 0)
        }
        #expect(try await s.keiji("system", "--start").status == 0)
        for name in tasks.keys { #expect(try await s.keiji("task", "--run", "--name=\(name)").status == 0) }
        let ran = await eventually(.seconds(60)) {
            let list = try JSONSerialization.jsonObject(with: Data(try await s.keiji("task", "--list", "--json").stdout.utf8)) as? [[String: Any]]
            return list?.filter { $0["lastResult"] is String }.count == tasks.count
        }
        #expect(ran, "every task ran once")
        let expected = ["crasher": "killed (signal 4)", "failer": "failed (exit 3)", "fine": "succeeded"]
        var r = try await s.keiji("system", "--status")
        for (name, result) in expected {
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            #expect(line?.hasSuffix("   last \(result)") == true, "\(name): \(r.stdout)")
        }
        r = try await s.keiji("system", "--status", "--json")
        let objects = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["tasks"] as? [[String: Any]] ?? []
        let last = Dictionary(uniqueKeysWithValues: objects.compactMap { object in
            (object["name"] as? String).flatMap { name in (object["last"] as? String).map { (name, $0) } }
        })
        #expect(last == expected, "\(r.stdout)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A run the scheduler's crash ended (its spawn server kills the run's group) is not shown as running while no
    /// scheduler runs: `--list` and `system --status` say `interrupted`, and `--get` not running, until the next start
    /// journals how it ended (and here re-runs it).
    @Test func aRunEndedByTheSchedulersCrashShowsAsInterruptedUntilTheNextStart() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=long", "--desc=x", "--command", "sleep 60", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--run", "--name=long").status == 0)
        func state() async throws -> String? {
            let list = try await s.keiji("task", "--list", "--json")
            return (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])?.first?["state"] as? String
        }
        #expect(await eventually { try await state() == "running" })
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        kill(scheduler, SIGKILL)
        #expect(await eventually { !isAlive(scheduler) })

        #expect(try await state() == "interrupted")
        var r = try await s.keiji("system", "--status")
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("long ") }
        #expect(line?.contains("interrupted") == true, "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--status", "--json")
        let tasks = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["tasks"] as? [[String: Any]]
        #expect(tasks?.first?["interrupted"] as? Bool == true && tasks?.first?["running"] as? Bool == false, "\(r.stdout)")
        // `--get` agrees: it said `IsRunning: true` of the dead run until the next start.
        r = try await s.keiji("task", "--get", "--name=long", "--json")
        let got = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(got?["IsRunning"] as? Bool == false, "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("task", "--get", "--name=long")
        #expect(r.stdout.contains("\nIsRunning: false\n"), "\(r.stdout)\(r.stderr)")

        #expect(try await s.keiji("system", "--start").status == 0)
        // The start reports the run interrupted and re-runs it (a manual run's attempt, by default).
        r = try await s.keiji("system", "--status", "--json")
        let recovery = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["recovery"] as? [String: Any]
        #expect((recovery?["interruptedRuns"] as? [[String: Any]])?.count == 1, "\(r.stdout)")
        // Its times are ISO 8601 as every other time of the output (they were epoch milliseconds).
        let isoTime = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z/
        #expect((recovery?["startedAt"] as? String)?.wholeMatch(of: isoTime) != nil, "\(r.stdout)")
        #expect(((recovery?["interruptedRuns"] as? [[String: Any]])?.first?["startedAt"] as? String)?.wholeMatch(of: isoTime) != nil, "\(r.stdout)")
        // Its end is when this start recorded it: the table gives its duration as a bound.
        r = try await s.keiji("task", "--runs", "--name=long")
        let interruptedRow = r.stdout.split(separator: "\n").first { $0.contains("interrupted") }
        #expect(interruptedRow?.contains("≤") == true, "\(r.stdout)")
        #expect(await eventually { try await state() == "running" })
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A restart whose bus cannot start again (its port taken meanwhile) still starts the scheduler, so tasks keep
    /// running, and fails with the bus's reason; it left both services down. It says what it stopped.
    @Test func aRestartWhoseBusCannotStartKeepsTheSchedulerRunning() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        // A listener on a free port of the loopback, which the bus is then told to use.
        let listener = try LoopbackSocket.listeningOnAFreePort(in: 20000..<32000)
        defer { close(listener.fd) }
        try s.setSetting("BUS_TRANSPORT", "tcp")
        try s.setSetting("BUS_PUSH_PORT", String(listener.port))

        let r = try await s.keiji("system", "--restart")
        #expect(r.status == 1 && r.stderr.contains("keiji-bus") && r.stderr.contains("already in use"), "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("scheduler: stopped") && r.stdout.contains("bus: stopped") && r.stdout.contains("scheduler: started"),
                "\(r.stdout)\(r.stderr)")
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        #expect(isAlive(scheduler))
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// Ctrl-C or a closed terminal while a restart waited for the scheduler's runs ended the CLI between the stop
    /// and the start: the scheduler stayed down and nothing said so. The restart holds such signals back, says so at
    /// each (the second too), starts the services, and only then ends by the first signal, as it would have ended.
    @Test func anInterruptedRestartStillStartsTheServices() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=long", "--desc=x", "--command", "sleep 60", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let before = try #require(try pid(of: "scheduler", in: s))
        #expect(try await s.keiji("task", "--run", "--name=long").status == 0)
        #expect(await eventually {
            let list = try await s.keiji("task", "--list", "--json")
            return (try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])?.first?["state"] as? String == "running"
        })

        let (restart, out, err) = try launched(["system", "--restart"], in: s)
        // SIGINT once the stop says it waits for the run, SIGHUP once that was answered; read on a thread of its own.
        let stderr = try await offThePool { () -> String in
            var text = ""
            var sent: [Int32] = []
            while case let chunk = err.fileHandleForReading.availableData, !chunk.isEmpty {
                text += String(decoding: chunk, as: UTF8.self)
                if sent.isEmpty, text.contains("grace time to end") {
                    sent.append(SIGINT)
                } else if sent == [SIGINT], text.contains("interrupted: the restart finishes first") {
                    sent.append(SIGHUP)
                } else {
                    continue
                }
                kill(restart.processIdentifier, sent.last!)
            }
            restart.waitUntilExit()
            return text
        }
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(restart.terminationReason == .uncaughtSignal && restart.terminationStatus == SIGINT, "\(restart.terminationStatus) \(stdout)\(stderr)")
        let held = stderr.split(separator: "\n").filter { $0.contains("warning: interrupted: the restart finishes first, or the services would stay down "
                                                                         + "(now stopping the scheduler, whose runs in progress get their grace time)") }
        #expect(held.count == 2, "\(stderr)")
        #expect(stdout.contains("scheduler: stopped") && stdout.contains("bus: started") && stdout.contains("scheduler: started"), "\(stdout)\(stderr)")
        let after = try #require(try pid(of: "scheduler", in: s))
        #expect(after != before && isAlive(after))
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// Ctrl-C while a start waited for the scheduler (here while it recovers a long journal) ended the CLI with the
    /// bus it had started running without the scheduler, or with the scheduler starting on unsaid. The start stops
    /// again what it started, keeps what ran before it, says so in one line, and ends by the signal.
    @Test func anInterruptedStartLeavesTheServicesAsTheyWere() async throws {
        // The scheduler the start spawns stops itself before it begins (a wrapper in its place), so the start is
        // still waiting for it when the interrupt comes: racing a long recovery, a loaded machine's scheduler was
        // sometimes ready first.
        let real = try #require(Session.binaryDirectory())
        let binaries = FileManager.default.temporaryDirectory.path + "/keiji-e2e-bin-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: binaries, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: binaries) }
        for binary in ["keiji", "keiji-bus"] {
            // /proc/self/exe names the link, so `keiji` finds the wrapper beside it.
            if link(real + "/" + binary, binaries + "/" + binary) != 0 {
                try await ExecutableFiles.copy([real + "/" + binary], to: binaries + "/" + binary)
            }
        }
        try await ExecutableFiles.write("#!/bin/sh\nkill -STOP $$\nexec '\(real)/keiji-scheduler' \"$@\"\n", to: binaries + "/keiji-scheduler")
        let s = try Session(binaries: binaries)
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=ping", "--desc=x", "--command", "true", "--every", "1h").status == 0)

        /// A start interrupted (SIGINT to its group, as Ctrl-C) while the scheduler it spawned is stopped.
        func interruptedStart(_ arguments: String...) async throws -> (Process, stdout: String, stderr: String) {
            let (start, out, err) = try launched(["system", "--start"] + arguments, in: s)
            #expect(await eventually { try pid(of: "scheduler", in: s) != nil || !start.isRunning })
            let scheduler = try #require(try pid(of: "scheduler", in: s))
            func stopped() -> Bool {
                guard let stat = try? String(contentsOfFile: "/proc/\(scheduler)/stat", encoding: .utf8),
                      let end = stat.lastIndex(of: ")") else { return false }
                return stat[stat.index(end, offsetBy: 2)] == "T"
            }
            #expect(await eventually { stopped() }, "the wrapper stops itself before the scheduler begins")
            #expect(getpgid(start.processIdentifier) == start.processIdentifier)
            kill(-start.processIdentifier, SIGINT)
            kill(scheduler, SIGCONT)
            let stdout = try await offThePool { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            try await offThePool { start.waitUntilExit() }
            #expect(start.terminationReason == .uncaughtSignal && start.terminationStatus == SIGINT, "\(start.terminationStatus) \(stdout)\(stderr)")
            try #expect(!isAlive(scheduler) && processes("keiji-schedul", of: s).isEmpty && pid(of: "scheduler", in: s) == nil, "\(stdout)\(stderr)")
            return (start, stdout, stderr)
        }

        var (_, stdout, stderr) = try await interruptedStart()
        #expect(stdout.contains("bus: started") && stdout.contains("scheduler: stopped (the start was interrupted)\nbus: stopped (the start was interrupted)\n")
                && !stdout.contains("scheduler: started"), "\(stdout)\(stderr)")
        #expect(stderr == "error: interrupted: stopped keiji-scheduler and keiji-bus again; the services are as they were before this start\n", "\(stdout)\(stderr)")
        try #expect(processes("keiji-bus", of: s).isEmpty && pid(of: "bus", in: s) == nil)

        // A bus that ran before the start runs on.
        #expect(try await s.keiji("system", "--start", "--bus").status == 0)
        let bus = try #require(try pid(of: "bus", in: s))
        (_, stdout, stderr) = try await interruptedStart()
        #expect(stdout.contains("bus: already running (pid \(bus))") && !stdout.contains("bus: stopped"), "\(stdout)\(stderr)")
        #expect(stderr == "error: interrupted: stopped keiji-scheduler again; the services are as they were before this start\n", "\(stdout)\(stderr)")
        try #expect(isAlive(bus) && pid(of: "bus", in: s) == bus)
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// What a call writes on `stderr` up to its line saying it waits for another call's services lock (all of it, if it
    /// ends first).
    func waitingLine(_ stderr: Pipe) async throws -> String {
        try await offThePool {
            var text = ""
            while !text.contains("that starts or stops the services…") {
                let chunk = stderr.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }
    }

    /// Ctrl-C (or SIGTERM) while a start waits for the services lock another call holds ends it at once, nothing
    /// started: the start holds back interrupts, and one that came during the wait was only noted, so the start waited
    /// on until the holder let go (up to 180 s) before it ended.
    @Test func aStartInterruptedWhileWaitingForTheServicesLockEndsAtOnceHavingStartedNothing() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for signal in [SIGINT, SIGTERM] {
            let lock = open(s.home + "/.keiji/services.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
            var held = true
            defer { if held { close(lock) } }
            let (start, out, err) = try launched(["system", "--start"], in: s)
            let waiting = try await waitingLine(err)
            #expect(waiting.hasPrefix("waiting for another keiji call"), "\(signal): \(waiting)")
            kill(-start.processIdentifier, signal)  // to its group, as Ctrl-C at a terminal
            #expect(await eventually(.seconds(20)) { !start.isRunning }, "\(signal): still waiting for the lock 20 s after the interrupt")
            close(lock)  // a start still waiting (the failure above) ends now
            held = false
            let stdout = try await offThePool { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            try await offThePool { start.waitUntilExit() }
            #expect(start.terminationReason == .uncaughtSignal && start.terminationStatus == signal, "\(signal): \(start.terminationStatus) \(stdout)\(stderr)")
            #expect(stdout.isEmpty && stderr == "error: interrupted: nothing was started; the services are as they were before this start\n",
                    "\(signal): \(stdout)\(stderr)")
            try #expect(pid(of: "bus", in: s) == nil && pid(of: "scheduler", in: s) == nil
                        && processes("keiji-bus", of: s).isEmpty && processes("keiji-schedul", of: s).isEmpty, "\(signal): nothing started")
        }
    }

    /// Ctrl-C while a restart still waits for the services lock another call holds, nothing stopped yet, ends it at
    /// once with the services as they were: the restart holds back interrupts so that it finishes once it has stopped
    /// something, and one during that first wait was only noted ("the restart finishes first"), so it waited on, then
    /// stopped and started both services (running before or not) and only then ended.
    @Test(arguments: [false, true]) func aRestartInterruptedWhileWaitingForTheServicesLockEndsAtOnceHavingTouchedNothing(runningBefore: Bool) async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        if runningBefore { #expect(try await s.keiji("system", "--start").status == 0) }
        let bus = try pid(of: "bus", in: s), scheduler = try pid(of: "scheduler", in: s)
        #expect(runningBefore ? bus != nil && scheduler != nil : bus == nil && scheduler == nil)
        let lock = open(s.home + "/.keiji/services.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
        var held = true
        defer { if held { close(lock) } }
        let (restart, out, err) = try launched(["system", "--restart"], in: s)
        let waiting = try await waitingLine(err)
        #expect(waiting.hasPrefix("waiting for another keiji call"), "\(waiting)")
        kill(-restart.processIdentifier, SIGINT)  // to its group, as Ctrl-C at a terminal
        #expect(await eventually(.seconds(20)) { !restart.isRunning }, "still waiting for the lock 20 s after the interrupt")
        close(lock)  // a restart still waiting (the failure above) goes on now
        held = false
        let stdout = try await offThePool { String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try await offThePool { restart.waitUntilExit() }
        #expect(restart.terminationReason == .uncaughtSignal && restart.terminationStatus == SIGINT, "\(restart.terminationStatus) \(stdout)\(stderr)")
        #expect(stdout.isEmpty && stderr == "error: interrupted: nothing was stopped or started; the services are as they were before this restart\n",
                "\(stdout)\(stderr)")
        if runningBefore {
            try #expect(pid(of: "bus", in: s) == bus && pid(of: "scheduler", in: s) == scheduler, "the same services run on")
            #expect(bus.map(isAlive) == true && scheduler.map(isAlive) == true)
            #expect(try await s.keiji("system", "--stop").status == 0)
        } else {
            try #expect(pid(of: "bus", in: s) == nil && pid(of: "scheduler", in: s) == nil
                        && processes("keiji-bus", of: s).isEmpty && processes("keiji-schedul", of: s).isEmpty, "nothing started")
        }
    }

    /// `keiji system --restart` run by a task (a maintenance task) is one of the runs the scheduler's stop waits for:
    /// after 10 s the stop killed the run's group, the restarting CLI with it, and the scheduler stayed down. The CLI
    /// hands the restart to a detached copy of itself and the run ends at once: the scheduler comes back as a new
    /// process, which carries none of the run's variables, and the copy's lines are in the scheduler's log.
    @Test func aRestartRunByATaskBringsTheSchedulerBack() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        // The run restarts once the test has its `--run` acknowledged: a restart at once could stop the bus before it
        // relayed that acknowledgement, and the `--run` then failed though the run went ahead.
        let go = s.home + "/go"
        #expect(try await s.keiji("task", "--create", "--name=maint", "--desc=x", "--command",
                                  "while [ ! -e \(go) ]; do sleep 0.05; done; \(s.binaries)/keiji system --restart", "--every", "1h").status == 0)
        // The task's `.env` sets a variable and PATH; the services were started with one of their own.
        let folder = s.home + "/keiji/tasks/maint"
        let dotEnv = try String(contentsOfFile: folder + "/.env", encoding: .utf8)
        try (dotEnv + "\nTASK_SECRET=\"from-the-task\"\n").write(toFile: folder + "/.env", atomically: true, encoding: .utf8)
        s.launcher = ["/usr/bin/env", "SERVICES_MARK=from-the-start"]
        #expect(try await s.keiji("system", "--start").status == 0)
        s.launcher = []
        let before = try #require(try pid(of: "scheduler", in: s))
        #expect(try await s.keiji("task", "--run", "--name=maint").status == 0)
        #expect(FileManager.default.createFile(atPath: go, contents: nil))

        let log = s.home + "/.keiji/logs/services/scheduler/scheduler.log"
        var after: pid_t?
        #expect(await eventually(.seconds(60)) {
            after = try pid(of: "scheduler", in: s)
            guard let after, after != before else { return false }
            return try String(contentsOfFile: log, encoding: .utf8).contains("scheduler: started (pid \(after))")
        }, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let scheduler = try #require(after)
        #expect(isAlive(scheduler))
        let status = try await s.keiji("system", "--status").stdout
        #expect(status.contains("bus                ONLINE") && status.contains("scheduler          ONLINE"), "\(status)")
        let environment = try #require(FileManager.default.contents(atPath: "/proc/\(scheduler)/environ"))
        let variables = Array(environment).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(!variables.contains { $0.hasPrefix("KEIJI_RUN_ID=") }, "the new scheduler is no process of the run")
        // It has the environment of the scheduler it replaced, not the run's, and does not run from the task's folder.
        #expect(variables.contains("SERVICES_MARK=from-the-start"), "\(variables)")
        #expect(!variables.contains { $0.hasPrefix("TASK_SECRET=") }, "\(variables)")
        let directory = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(scheduler)/cwd")
        #expect(!directory.hasPrefix(folder), "\(directory)")
        let services = try String(contentsOfFile: log, encoding: .utf8)
        #expect(services.contains("keiji system --restart, asked by run ") && services.contains("scheduler: stopped"), "\(services)")
        // The run ended by itself before the stop waited for it (it was "stopped after 10012 ms").
        let runs = try await s.keiji("task", "--logs", "--name=maint").stdout
        #expect(runs.contains("keiji system --restart: goes on detached (pid ") && runs.contains(" succeeded after "), "\(runs)")
    }

    /// A process a run started in a session of its own (`setsid cmd &`) outlived `keiji system --stop`, which ended
    /// the run (and the next start): the scheduler's stop kills every process still carrying the run's ID. The
    /// process is told by a marker in its environment.
    @Test func systemStopKillsTheProcessesThatLeftARunsGroup() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let marker = "ESCAPEE_MARK=" + UUID().uuidString
        func marked() -> [pid_t] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
                guard let pid = pid_t(entry), isAlive(pid), let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ"),
                      Array(environment).split(separator: 0).contains(where: { Array($0) == Array(marker.utf8) }) else { return nil }
                return pid
            }
        }
        defer { for pid in marked() { kill(pid, SIGKILL) } }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=escaper", "--desc=x", "--command", "\(marker) setsid sleep 300 & sleep 100",
                                  "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--run", "--name=escaper").status == 0)
        #expect(await eventually(.seconds(30)) { marked().contains { getsid($0) == $0 } }, "the run's setsid process started")
        #expect(try await s.keiji("system", "--stop").status == 0)
        #expect(await eventually(.seconds(60)) { marked().isEmpty }, "\(marked())")
    }

    /// The scheduler's lines to its log (its stderr) went through `FileHandle.write`, which ends the process when the
    /// write fails: with its log's disk full, a task's `kill -USR1 $PPID` (said there as an ignored signal) took the
    /// scheduler down. Its log folder is a small tmpfs, filled before the task runs.
    @Test(.enabled(if: NeededUnderCI.runs(SmallDisk.canMount))) func aFullLogDiskDoesNotEndTheSchedulerAtItsNextLine() async throws {
        try #require(SmallDisk.canMount, "needs root and /usr/bin/mount for a tmpfs (under CI=true it runs, and fails, without them)")
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let logs = s.home + "/.keiji/logs/services/scheduler"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let disk = try SmallDisk(at: logs, size: "64k")
        defer { disk.unmount(lazily: true) }
        #expect(try await s.keiji("task", "--create", "--name=nudger", "--desc=x", "--command", "kill -USR1 $PPID", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let scheduler = try #require(try pid(of: "scheduler", in: s))
        // The disk, then the log's own last page (a write into a page the file has goes through on a full tmpfs).
        for file in [logs + "/filler", logs + "/scheduler.log"] {
            let fd = open(file, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0o600)
            for size in [4096, 1] {
                let padding = [UInt8](repeating: UInt8(ascii: "\n"), count: size)
                while write(fd, padding, size) > 0 {}
            }
            #expect(errno == ENOSPC, "\(file) is full")
            close(fd)
        }
        #expect(try await s.keiji("task", "--run", "--name=nudger").status == 0)
        // The helper's note of the signal reaches the scheduler before the run's exit: a scheduler that died at it
        // never records the run.
        #expect(await eventually(.seconds(30)) { try await s.keiji("task", "--runs", "--name=nudger").stdout.contains("succeeded") })
        #expect(isAlive(scheduler), "the scheduler is still running")
        #expect(try await s.keiji("system", "--stop").stdout.contains("scheduler: stopped"))
    }
}

extension SystemCommandTests {
    /// `setpriv` to run `keiji` as `nobody` (65534), for tests about what another user may not do. Needs root.
    static let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    static var canRunAsNobody: Bool { NeededUnderCI.canRunAsNobody }

    /// A start whose pid file cannot be written (here the folder is read-only; a full disk does the same) stops the
    /// service it spawned: it ran on where no keiji command saw it, holding the bus's sockets, and every later start
    /// was refused. Runs as `nobody` in a HOME of its own (root could write in the folder anyway; one another user
    /// owns is refused before anything starts, PrivateFolder).
    @Test(.enabled(if: NeededUnderCI.runs(canRunAsNobody))) func aServiceWhosePidFileCannotBeWrittenIsStoppedAgain() async throws {
        try #require(Self.canRunAsNobody, "needs root and /usr/bin/setpriv (under CI=true it runs, and fails, without them)")
        let s = try Session()
        defer {
            for pid in processes("keiji-bus", of: s) + processes("keiji-schedul", of: s) { kill(pid, SIGKILL) }
            s.cleanUp()
        }
        #expect(chown(s.home, 65534, 65534) == 0 && chown(s.home + "/tmp", 65534, 65534) == 0)
        s.launcher = Self.asNobody
        #expect(try await s.keiji("init").status == 0)
        let services = s.home + "/.keiji/exec/services"
        #expect(chmod(services, 0o500) == 0)

        let r = try await s.keiji("system", "--start")
        #expect(r.status == 1 && r.stderr == "error: cannot write \(services)/bus.pid: Permission denied; keiji-bus was stopped again\n",
                "\(r.stdout)\(r.stderr)")
        #expect(processes("keiji-bus", of: s).isEmpty && processes("keiji-schedul", of: s).isEmpty, "nothing is left running")
    }

    /// Another user's workspace: a pid file or settings that cannot be read is said so, with a non-zero exit. Taken as
    /// absent, `--stop` said "was not running" (exit 0) of services that ran on, and `task --list` said "no workspace;
    /// run keiji init". Root's services, `nobody`'s calls.
    @Test(.enabled(if: NeededUnderCI.runs(canRunAsNobody))) func aPidFileOrWorkspaceThatCannotBeReadIsNotTakenForNone() async throws {
        try #require(Self.canRunAsNobody, "needs root and /usr/bin/setpriv (under CI=true it runs, and fails, without them)")
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        let bus = try #require(try pid(of: "bus", in: s)), scheduler = try #require(try pid(of: "scheduler", in: s))
        #expect(chmod(s.home, 0o755) == 0 && chmod(s.home + "/keiji", 0o755) == 0)  // ~/.keiji stays 0700
        s.launcher = Self.asNobody

        let stop = try await s.keiji("system", "--stop")
        #expect(stop.status == 1 && stop.stderr == "error: cannot read \(s.home)/.keiji/exec/services/scheduler.pid: Permission denied\n",
                "\(stop.stdout)\(stop.stderr)")
        #expect(isAlive(bus) && isAlive(scheduler))
        let status = try await s.keiji("system", "--status")
        #expect(status.status == 1 && status.stderr.contains("cannot read \(s.home)/.keiji/exec/services/bus.pid: Permission denied"), "\(status.stderr)")

        #expect(chmod(s.home, 0o700) == 0)
        let list = try await s.keiji("task", "--list")
        #expect(list.status == 1 && list.stderr == "error: cannot read \(s.home)/keiji/settings.conf: Permission denied\n", "\(list.stderr)")
    }

    /// While the running scheduler cannot update the query view (`view.behind`, here written for this test process),
    /// `system --status`, `task --list` and `--get` say so: they showed its older rows with no word.
    @Test func aViewBehindTheJournalIsSaidSo() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=t", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let workspace = Workspace(home: s.home)
        try ViewLag.record(since: 1_796_000_000_000, reason: "database or disk is full", workspace: workspace)
        let warning = "warning: the query view has not been updated since 2026-11-30T00:53:20.000Z (database or disk is full); "
            + "what it shows is older than the journal until the scheduler catches it up"
        let status = try await s.keiji("system", "--status")
        #expect(status.status == 0 && status.stderr == warning + "\n" && !status.stdout.contains("warning"), "\(status.stdout)\(status.stderr)")
        let json = try await s.keiji("system", "--status", "--json")
        let behind = (try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["viewBehind"] as? [String: String]
        #expect(behind == ["since": "2026-11-30T00:53:20.000Z", "reason": "database or disk is full"], "\(json.stdout)")
        for call in [["task", "--list"], ["task", "--get", "--name=t"]] {
            let r = try await s.run(call)
            #expect(r.status == 0 && r.stderr.contains(warning), "\(call): \(r.stderr)")
        }
        ViewLag.clear(workspace)
        #expect(try await s.keiji("system", "--status").stderr.isEmpty)
    }

    /// A relative HOME is refused as an unset one is, with what to do: `keiji init` built a workspace under the current
    /// folder, which every later command found only from that folder.
    @Test func aRelativeHomeIsRefused() throws {
        let s = try Session()
        defer { s.cleanUp() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: s.binaries + "/keiji")
        process.arguments = ["init"]
        process.currentDirectoryURL = URL(fileURLWithPath: s.home)
        process.environment = s.environment.merging(["HOME": "relative/dir"]) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1
                && stderr == "error: HOME is a relative path (relative/dir); keiji keeps its files under $HOME: set it to an absolute path\n", "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/relative"), "nothing made under the current folder")
    }
}
