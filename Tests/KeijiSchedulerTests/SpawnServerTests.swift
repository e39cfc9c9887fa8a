import CSpawn
import Foundation
import KeijiCore
import KeijiTestSupport
import Synchronization
import Testing

@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// keiji-spawn-server through its Swift end: what a run gets (own group, clean signals, /dev/null stdin, its
/// output relayed into the log), what comes back (pid, exit status, exec errors), and what happens when the
/// helper dies. Each test has a server of its own, so killing one never touches another test's runs.
@Suite(.timeLimit(.minutes(5)))  // a helper that stops reaping must fail the suite, not hang it
final class SpawnServerTests: Sendable {
    let directory: String
    let log: String
    let fd: Int32

    init() throws {
        directory = FileManager.default.temporaryDirectory.path + "/keiji-spawn-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        log = directory + "/run.log"
        fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    }

    /// After each test (a new instance runs each one), whichever way it ended.
    deinit {
        close(fd)
        try? FileManager.default.removeItem(atPath: directory)
    }

    func request(_ arguments: [String], searchPath: Bool = false, environment: [String: String] = ["PATH": "/usr/bin:/bin"]) -> SpawnRequest {
        SpawnRequest(program: arguments[0], arguments: arguments, environment: EnvironmentBlock(environment), directory: directory,
                     outputDescriptor: fd, searchPath: searchPath, graceMilliseconds: 1000)
    }

    func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// The pid a run wrote to `file`, once it is all there (the shell creates the file before it writes it).
    static func pid(in file: String) -> pid_t? {
        (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static func eventually(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func helperHasNoSwiftRuntime() throws {
        let path = try #require(SpawnServer.installedPath)
        let bytes = try #require(FileManager.default.contents(atPath: path), "keiji-spawn-server is built beside the tests")
        #expect(bytes.range(of: Data("libswiftCore".utf8)) == nil, "not linked against libswiftCore")
        #expect(bytes.range(of: Data("swift_retain".utf8)) == nil, "no Swift runtime code inside")
        // Static: no program interpreter (PT_INTERP = 3) among the ELF program headers.
        let header = [UInt8](bytes.prefix(64))
        func integer(_ offset: Int, _ size: Int) -> Int { (0..<size).reduce(0) { $0 | Int(header[offset + $1]) << (8 * $1) } }
        let (offset, size, count) = (integer(0x20, 8), integer(0x36, 2), integer(0x38, 2))
        let types = (0..<count).map { index in bytes[offset + index * size..<offset + index * size + 4].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } }
        #expect(!types.isEmpty && !types.contains(3), "statically linked (ldd: not a dynamic executable)")
    }

    @Test func reportsExitStatusesAndExecErrors() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let exits = try await server.start(request(["/bin/sh", "-c", "exit 7"]))
        #expect(await server.exitStatus(of: exits) == .exited(7))
        let killed = try await server.start(request(["/bin/sh", "-c", "kill -TERM $$"]))
        #expect(await server.exitStatus(of: killed) == .signaled(SIGTERM))
        await #expect(throws: KeijiError.self) { try await server.start(request(["/nonexistent/program"])) }
        do {
            _ = try await server.start(request(["keiji-no-such-program-x1"], searchPath: true))
            Issue.record("a missing program must not start")
        } catch {
            #expect("\(error)" == "cannot start keiji-no-such-program-x1: No such file or directory")
        }
        // A script without a #! line runs under sh (as execvp does), found through the run's own PATH.
        let tools = directory + "/tools"
        try FileSystem.createDirectory(tools)
        try await ExecutableFiles.write("echo tool ran with $1\n", to: tools + "/my-tool")
        let tool = try await server.start(request(["my-tool", "an-argument"], searchPath: true, environment: ["PATH": "/nowhere:" + tools]))
        #expect(await server.exitStatus(of: tool) == .exited(0))
        #expect(output().contains("tool ran with an-argument"))
    }

    @Test func aRunGetsItsOwnGroupCleanSignalsDevNullAndTheLog() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let script = "echo pid=$$; cut -d' ' -f5 /proc/$$/stat | sed 's/^/group=/'; readlink /proc/$$/fd/0; pwd; echo to-stderr >&2"
        let run = try await server.start(request(["/bin/sh", "-c", script]))
        #expect(await server.exitStatus(of: run) == .exited(0))
        // The signal state of the exec'd process itself (a shell blocks signals around its own forks).
        let signals = try await server.start(request(["/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]))
        #expect(await server.exitStatus(of: signals) == .exited(0))
        let text = output()
        #expect(text.contains("pid=\(run.pid)\n") && text.contains("group=\(run.pid)\n"), "its own process group: \(text)")
        #expect(text.contains("/dev/null\n"), "stdin from /dev/null")
        #expect(text.contains("SigBlk:\t0000000000000000\n"), "nothing blocked: \(text)")
        #expect(text.contains("SigIgn:\t0000000000000000\n"), "nothing ignored: \(text)")
        #expect(text.contains(directory + "\n"), "in the task folder")
        #expect(text.contains("to-stderr\n"), "stderr into the log")
    }

    /// The helper raises its own soft descriptor limit to the hard one (a pipe and a log per run), and a run gets the
    /// soft limit the helper started with. The helper starts here through a wrapper that lowers its soft limit first,
    /// so the two differ even where the test's own soft and hard limits are equal (as on CI machines).
    @Test func aRunGetsTheSoftDescriptorLimitTheHelperStartedWith() async throws {
        let installed = try #require(SpawnServer.installedPath)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let hard = limit.rlim_max
        try #require(hard > 64 && hard < 1 << 40, "a bounded hard limit")
        let lowered = hard - 1
        let wrapper = directory + "/lowered-helper"
        try await ExecutableFiles.write("#!/bin/sh\nulimit -Sn \(lowered)\nexec \(installed) \"$@\"\n", to: wrapper)
        let server = SpawnServer(helperPath: wrapper)
        let script = "echo run=$(ulimit -Sn); grep '^Max open files' /proc/$PPID/limits"
        let run = try await server.start(request(["/bin/sh", "-c", script]))
        #expect(await server.exitStatus(of: run) == .exited(0))
        let text = output()
        #expect(text.contains("run=\(lowered)\n"), "the soft limit the helper started with: \(text)")
        let helperLimits = try #require(text.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let fields = helperLimits.split(separator: " ", omittingEmptySubsequences: true)
        #expect(fields.count >= 5 && fields[3] == "\(hard)" && fields[4] == "\(hard)", "the helper's own soft limit raised: \(text)")
    }

    /// A run's umask is 022, as cron and systemd give, not the scheduler's (that of the shell that ran `keiji system
    /// --start`). The helper starts here through a wrapper under umask 077.
    @Test func aRunsUmaskIs022WhateverTheSchedulersIs() async throws {
        let installed = try #require(SpawnServer.installedPath)
        let wrapper = directory + "/private-helper"
        try await ExecutableFiles.write("#!/bin/sh\numask 077\nexec \(installed) \"$@\"\n", to: wrapper)
        let server = SpawnServer(helperPath: wrapper)
        let run = try await server.start(request(["/bin/sh", "-c", "echo umask=$(umask)"]))
        #expect(await server.exitStatus(of: run) == .exited(0))
        #expect(output().contains("umask=0022\n"), "\(output())")
    }

    /// Processes a run leaves outside its group (`setsid`) keep its output pipe, and the helper held that pipe and a log
    /// descriptor for each until they closed it: at its descriptor limit every start failed ("Too many open files").
    /// It now relays at most a quarter of its limit of such pipes, closing the oldest, said once in its log. The helper
    /// starts here through a wrapper that lowers its hard limit (which it raises its soft limit to) to 48: 12 pipes.
    @Test func pipesRunsLeftBehindDoNotTakeEveryDescriptor() async throws {
        let installed = try #require(SpawnServer.installedPath)
        let wrapper = directory + "/lowered-helper"
        try await ExecutableFiles.write("#!/bin/sh\nulimit -n 48\nexec \(installed) \"$@\"\n", to: wrapper)
        let server = SpawnServer(helperPath: wrapper)
        defer { for index in 1...40 { Self.pid(in: directory + "/left.\(index)").map { _ = kill($0, SIGKILL) } } }
        for index in 1...40 {
            // Its pid written once it has its own session: the run's end kills what is still in its group.
            let file = directory + "/left.\(index)"
            let script = "setsid sh -c 'echo $$ > \(file); exec sleep 120' & while [ ! -s \(file) ]; do sleep 0.01; done; echo left \(index)"
            let run = try await server.start(request(["/bin/sh", "-c", script]))
            #expect(await server.exitStatus(of: run) == .exited(0))
        }
        let plain = try await server.start(request(["/bin/sh", "-c", "echo still starts"]))
        #expect(await server.exitStatus(of: plain) == .exited(0))
        let text = output()
        #expect(text.contains("left 40\n") && text.contains("\nstill starts\n"), "\(text)")
        let said = text.split(separator: "\n").filter { $0.contains(" [keiji] no longer relaying the output of processes run pid ") }
        #expect(said.count >= 40 - 12 && said.count < 40 && said.allSatisfy { $0.contains("relays at most 12 pipes") }, "\(said)")
    }

    /// A start the helper refuses for want of descriptors, processes or memory (EMFILE, ENFILE, EAGAIN, ENOMEM) fails
    /// as out of resources, which puts no task in error (its next slot tries again), where a missing program is the
    /// task's to fix. The helper starts here through a wrapper that leaves it 9 descriptors: the run's log takes the
    /// last, and its output pipe finds none.
    @Test func aStartRefusedForWantOfDescriptorsIsOutOfResourcesAndAMissingProgramIsNot() async throws {
        let installed = try #require(SpawnServer.installedPath)
        let wrapper = directory + "/starved-helper"
        try await ExecutableFiles.write("#!/bin/sh\nulimit -n 9\nexec \(installed) \"$@\"\n", to: wrapper)
        let starved = SpawnServer(helperPath: wrapper)
        do {
            let run = try await starved.start(request(["/bin/sh", "-c", "echo started"]))
            let status = await starved.exitStatus(of: run)
            Issue.record("started with no descriptor for its output: \(status)")
        } catch let error as KeijiError {
            #expect(error.code == .outOfResources && error.message == "cannot start /bin/sh: Too many open files", "\(error.code): \(error)")
        }
        let server = SpawnServer(helperPath: installed)
        do {
            _ = try await server.start(request(["keiji-no-such-program-x2"], searchPath: true))
            Issue.record("a missing program must not start")
        } catch let error as KeijiError {
            #expect(error.code == .spawn && error.message == "cannot start keiji-no-such-program-x2: No such file or directory", "\(error.code): \(error)")
        }
    }

    /// The run's output goes through a pipe the helper relays a chunk at a time; an exit is reported only once what
    /// the pipe held then is in the log, so the scheduler's end line (written once it hears of the exit) comes after
    /// the run's last words. Each run leaves a megabyte in a pipe it enlarged to 1 MiB (perl, from perl-base;
    /// F_SETPIPE_SZ is 1031). Reported before the rest was relayed, the exit was seen early in some of the runs.
    @Test(.enabled(if: NeededUnderCI.runs(NeededUnderCI.hasPerl)))
    func anExitIsReportedOnceTheRunsOutputIsInTheLog() async throws {
        try #require(NeededUnderCI.hasPerl, "needs /usr/bin/perl (under CI=true it runs, and fails, without it)")
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let script = "fcntl(STDOUT, 1031, 1048576); syswrite(STDOUT, (\"x\" x 1000000) . \"\\nlast words\\n\")"
        var early: [Int] = []
        for count in 1...20 {
            let run = try await server.start(request(["/usr/bin/perl", "-e", script]))
            #expect(await server.exitStatus(of: run) == .exited(0))
            var info = stat()
            fstat(fd, &info)
            if info.st_size != 1_000_012 { early.append(Int(info.st_size)) }
            #expect(ftruncate(fd, 0) == 0)
        }
        #expect(early.isEmpty, "exits reported with the log at \(early) of 1000012 bytes")
    }

    /// A run's parent is the helper: `kill -USR1 $PPID` ("tell my parent I'm ready"), `-HUP` or `-TERM` from a task
    /// killed it, and with it every other run in progress. They are ignored now, and said once, naming the sender.
    @Test func signalsFromARunToItsParentAreIgnoredAndSaid() async throws {
        let lines = Mutex<[String]>([])
        let server = SpawnServer(helperPath: SpawnServer.installedPath, say: { line in lines.withLock { $0.append(line) } })
        let gate = directory + "/gate"
        let other = try await server.start(request(["/bin/sh", "-c", "echo begins; while [ ! -e '\(gate)' ]; do sleep 0.05; done; echo ends"]))
        let helper = try #require(server.serverPID)
        let sender = try await server.start(request(["/bin/sh", "-c", "kill -USR1 $PPID; kill -HUP $PPID; kill -TERM $PPID; kill -TERM $PPID; echo told"]))
        #expect(await server.exitStatus(of: sender) == .exited(0))
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        #expect(await server.exitStatus(of: other) == .exited(0), "the other run ended as it would have")
        #expect(server.serverPID == helper, "the same helper")
        #expect(output().contains("begins\n") && output().contains("ends\n") && output().contains("told\n"), "\(output())")
        let said = lines.withLock { $0 }.filter { $0.contains(" ignored signal ") }
        #expect(said.count == 3 && said.allSatisfy { $0.hasPrefix("the spawn server (pid \(helper)) ignored signal ") && $0.contains(" from pid \(sender.pid) (") },
                "\(said)")
        #expect([SIGUSR1, SIGHUP, SIGTERM].allSatisfy { signal in said.contains { $0.contains("ignored signal \(signal) (") } }, "\(said)")
    }

    /// SIGSTOP is the one signal besides SIGKILL the helper cannot keep out: a run's `kill -STOP $PPID` held every
    /// start and end of a run until someone sent SIGCONT. The scheduler's end continues it, and says so.
    @Test func aHelperStoppedByARunIsContinuedAndSaid() async throws {
        let lines = Mutex<[String]>([])
        let server = SpawnServer(helperPath: SpawnServer.installedPath, say: { line in lines.withLock { $0.append(line) } })
        let stopper = try await server.start(request(["/bin/sh", "-c", "kill -STOP $PPID; echo sent"]))
        let helper = try #require(server.serverPID)
        #expect(await server.exitStatus(of: stopper) == .exited(0), "its end is reported once the helper runs again")
        let next = try await server.start(request(["/bin/sh", "-c", "echo after; exit 4"]))
        #expect(await server.exitStatus(of: next) == .exited(4), "a run after the stop starts and ends")
        #expect(server.serverPID == helper, "the same helper, continued")
        #expect(output().contains("sent\n") && output().contains("after\n"), "\(output())")
        let said = lines.withLock { $0 }
        #expect(said.contains { $0.hasPrefix("the spawn server (pid \(helper)) was stopped by signal \(SIGSTOP) (") && $0.contains("; continued it") },
                "\(said)")
    }

    @Test func signalsReachTheGroupAndTheGroupDiesWithItsLeader() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        // The leader exits at once, leaving a background child in its group: it is killed with the exit.
        let leftBehind = directory + "/left.pid"
        let quick = try await server.start(request(["/bin/sh", "-c", "sleep 300 & echo $! > '\(leftBehind)'"]))
        #expect(await server.exitStatus(of: quick) == .exited(0))
        let orphan = try #require(Self.pid(in: leftBehind))
        #expect(await Self.eventually { !LiveProcess.isRunning(orphan) }, "what the run left in its group died with it")

        let child = directory + "/child.pid"
        let waiting = try await server.start(request(["/bin/sh", "-c", "sleep 300 & echo $! > '\(child)'; wait"]))
        #expect(await Self.eventually { Self.pid(in: child) != nil })
        server.signal(waiting, SIGTERM)
        #expect(await server.exitStatus(of: waiting) == .signaled(SIGTERM))
        let sleeper = try #require(Self.pid(in: child))
        #expect(await Self.eventually { !LiveProcess.isRunning(sleeper) })
    }

    @Test func killNineOfTheHelperEndsItsRunsAndANewHelperTakesOver() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let child = directory + "/child.pid"
        let run = try await server.start(request(["/bin/sh", "-c", "sleep 300 & echo $! > '\(child)'; sleep 300"]))
        #expect(await Self.eventually { Self.pid(in: child) != nil })
        let helper = try #require(server.serverPID)
        kill(helper, SIGKILL)
        let status = await server.exitStatus(of: run)
        guard case .lost(let reason) = status else {
            Issue.record("expected a lost run, got \(status)")
            return
        }
        #expect(reason.contains("spawn server (pid \(helper)) was killed by signal 9"), "\(reason)")
        let sleeper = try #require(Self.pid(in: child))
        #expect(await Self.eventually { !LiveProcess.isRunning(run.pid) && !LiveProcess.isRunning(sleeper) }, "nothing of the run stays running")
        let result = RunExecutor.result(of: status, termination: nil, durationMs: 5)
        #expect(result.outcome == .interrupted && result.message?.contains("spawn server") == true)

        let next = try await server.start(request(["/bin/sh", "-c", "exit 3"]))
        #expect(await server.exitStatus(of: next) == .exited(3), "a new helper starts runs")
        #expect(server.serverPID != nil && server.serverPID != helper)
    }

    /// A dated start is held by the helper until its instant: the process begins then, not when it was sent.
    @Test func aDatedStartBeginsAtItsInstantNotBefore() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        var dated = request(["/bin/date", "+%s%N"])
        let instant = WallClock().nowMilliseconds() + 1500
        dated.notBeforeMilliseconds = instant
        let run = try await server.start(dated)
        #expect(await server.exitStatus(of: run) == .exited(0))
        let stamp = try #require(Int64(output().trimmingCharacters(in: .whitespacesAndNewlines)), "the run printed its start: \(output())")
        #expect(stamp >= instant * 1_000_000, "began \(Double(instant * 1_000_000 - stamp) / 1e6) ms before its instant")
        #expect(run.startedAtMicroseconds >= instant * 1000, "the helper reports when it started the run")
    }

    /// A dated start withdrawn while the helper holds it never runs, and its start throws ``SpawnServer/StartCancelled``;
    /// so does one withdrawn (``RunHandle/cancelStart(_:)``) after its tag was noted and before it was queued: the
    /// server's cancel finds nothing then and keeps nothing, and the handle's record withholds the start as it is
    /// queued (`unless`), the order ``RunExecutor`` follows. A start too far ahead is refused.
    @Test func aWithdrawnDatedStartNeverRuns() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let marker = directory + "/ran"
        var dated = request(["/bin/touch", marker])
        dated.notBeforeMilliseconds = WallClock().nowMilliseconds() + 120_000
        let (held, sent) = (server.newTag(), dated)
        let start = Task { try await server.start(sent, tag: held) }
        // Sent and held by the helper (a cancel before the start is queued is the case below).
        try #require(await Self.eventually { server.startsSent == 1 }, "the start reached the helper")
        server.cancel(held)
        await #expect(throws: SpawnServer.StartCancelled.self) { _ = try await start.value }

        let early = server.newTag(), handle = RunHandle()
        #expect(handle.expectStart(tag: early, server: server) == nil)
        handle.cancelStart(.task(message: "the task was disabled before the run began"))
        await #expect(throws: SpawnServer.StartCancelled.self) {
            _ = try await server.start(dated, tag: early, unless: { handle.notBegun != nil })
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "no withdrawn start ran")

        dated.notBeforeMilliseconds = WallClock().nowMilliseconds() + 2 * 3_600_000
        do {
            _ = try await server.start(dated)
            Issue.record("a start two hours ahead must be refused")
        } catch {
            #expect("\(error)".contains("Numerical result out of range"), "\(error)")
        }
        let now = try await server.start(request(["/bin/sh", "-c", "exit 4"]))
        #expect(await server.exitStatus(of: now) == .exited(4), "the helper serves starts after all that")
    }

    /// A dated start the helper holds when it is killed fails as the other unanswered starts do: it does not wait
    /// for an instant no helper keeps.
    @Test func aDatedStartHeldByAKilledHelperFails() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        var dated = request(["/bin/true"])
        dated.notBeforeMilliseconds = WallClock().nowMilliseconds() + 120_000
        let sent = dated
        let start = Task { try await server.start(sent) }
        try #require(await Self.eventually { server.startsSent == 1 }, "the start reached the helper")
        let helper = try #require(server.serverPID)
        kill(helper, SIGKILL)
        do {
            _ = try await start.value
            Issue.record("the start must fail with its helper")
        } catch let error as KeijiError {
            #expect(error.code == .unavailable && "\(error)".contains("was killed by signal 9"), "\(error)")
        }
    }

    /// Through ``RunExecutor``, the run of a dated start its helper held when it was killed goes to the next helper
    /// and begins at its instant: it cannot have begun before.
    @Test func aDatedRunWhoseHelperDiesGoesToTheNextHelper() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let definition = TaskDefinition(name: try TaskName("dated"), description: "", action: .command("/bin/date +%s%N"),
                                        schedule: ScheduleSpec(.every(1, .hours)), policy: RunPolicy(), directory: directory)
        let executor = RunExecutor(definition: definition, runID: "dated-1", slot: nil, logDescriptor: fd, environment: EnvironmentBlock(),
                                   errorFile: nil, server: server)
        // Far enough ahead that the kill below comes before it even on a loaded machine (after it, the run may have
        // begun, and it ends interrupted instead).
        let instant = WallClock().nowMilliseconds() + 30_000
        let beginning = Task { await executor.begin(handle: RunHandle(), notBeforeMilliseconds: instant) }
        try #require(await Self.eventually { server.startsSent == 1 }, "the start reached the helper")
        let helper = try #require(server.serverPID)
        kill(helper, SIGKILL)
        let outcome = await beginning.value
        guard case .started(let run) = outcome else {
            Issue.record("the run must begin with the next helper: \(outcome)")
            return
        }
        #expect(server.serverPID != helper)
        #expect(await server.exitStatus(of: run) == .exited(0))
        let stamp = try #require(Int64(output().trimmingCharacters(in: .whitespacesAndNewlines)), "the run printed its start: \(output())")
        #expect(stamp >= instant * 1_000_000, "began \(Double(instant * 1_000_000 - stamp) / 1e6) ms before its instant")
    }

    /// A sweep stuck on a process in D state (its `/proc/<pid>/environ` read blocks) held the end of every run keiji
    /// ended: the run's end comes after ``OrphanReaper/sweepBound``, the sweep going on.
    @Test func aStuckSweepDoesNotHoldTheEndOfARunKeijiStopped() async throws {
        let server = SpawnServer(helperPath: SpawnServer.installedPath)
        let released = Mutex(false)
        let swept = Mutex(false)
        var executor = RunExecutor(definition: TaskDefinition(name: try TaskName("stuck"), description: "", action: .command("/bin/sleep 300"),
                                                              schedule: ScheduleSpec(.every(1, .hours)), policy: RunPolicy(), directory: directory),
                                   runID: "stuck-1", slot: nil, logDescriptor: fd, environment: EnvironmentBlock(), errorFile: nil, server: server)
        executor.sweep = { _ in
            while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(20)) }
            swept.withLock { $0 = true }
        }
        defer { released.withLock { $0 = true } }
        let handle = RunHandle()
        guard case .started(let run) = await executor.begin(handle: handle) else {
            Issue.record("the run must start")
            return
        }
        let ending = Task { [executor] in await executor.wait(for: run, handle: handle) }
        let ended = Mutex(false)
        Task { _ = await ending.value; ended.withLock { $0 = true } }
        handle.terminate(reason: .stopped, grace: 1, because: "stopped")
        #expect(await Self.eventually { ended.withLock { $0 } }, "the run's end waited for the stuck sweep")
        #expect(!swept.withLock { $0 }, "the sweep was still stuck when the end came")
        released.withLock { $0 = true }
        #expect(await ending.value.outcome == .stopped)
    }

    @Test func aMissingHelperFailsTheStartWithItsReason() async throws {
        let server = SpawnServer(helperPath: directory + "/no-such-helper")
        do {
            _ = try await server.start(request(["/bin/true"]))
            Issue.record("no helper: the start must fail")
        } catch {
            #expect("\(error)".contains("no-such-helper"), "\(error)")
        }
    }

    /// Binaries replaced in place under a running scheduler (a package upgrade): a helper started after that is still
    /// the one the scheduler opened at its start. It used to exec the new file, of another protocol version, kill it,
    /// and fail every run until a restart.
    @Test func aHelperReplacedInPlaceStillStartsTheOneOpenedAtTheStart() async throws {
        let installed = try #require(SpawnServer.installedPath)
        let helper = directory + "/keiji-spawn-server"
        try await ExecutableFiles.copy([installed], to: helper)
        let server = SpawnServer(helperPath: helper)
        let first = try await server.start(request(["/bin/true"]))
        #expect(await server.exitStatus(of: first) == .exited(0))
        let old = try #require(server.serverPID)
        try await ExecutableFiles.write("#!/bin/sh\nexit 3\n", to: helper + ".new")
        #expect(rename(helper + ".new", helper) == 0)
        kill(old, SIGKILL)
        #expect(await Self.eventually { server.serverPID.map { $0 != old } ?? false }, "a new helper from the file opened at the start")
        let run = try await server.start(request(["/bin/sh", "-c", "exit 0"]))
        #expect(await server.exitStatus(of: run) == .exited(0))
    }

    /// A helper that answers READY with another protocol version is refused with that reason, not with the SIGKILL
    /// the scheduler itself sent it ("did not start (was killed by signal 9)"). The fake helper is perl (perl-base),
    /// which writes the reply in one record.
    @Test(.enabled(if: NeededUnderCI.runs(NeededUnderCI.hasPerl)))
    func aHelperOfAnotherProtocolVersionIsRefusedSayingSo() async throws {
        try #require(NeededUnderCI.hasPerl, "needs /usr/bin/perl (under CI=true it runs, and fails, without it)")
        let helper = directory + "/other-helper"
        let reply = "pack('LlQllQQLL', 1, 99, 0, $$, 0, 0, 0, 0, 0)"
        try await ExecutableFiles.write("#!/usr/bin/perl\nopen(my $s, '>&=', 3) or die; syswrite($s, \(reply)); sleep 60;\n", to: helper)
        let server = SpawnServer(helperPath: helper)
        do {
            _ = try await server.start(request(["/bin/true"]))
            Issue.record("a helper of another version: the start must fail")
        } catch {
            let text = "\(error)"
            #expect(text.contains("keiji-spawn-server at \(helper) speaks protocol 99, this scheduler \(KEIJI_SPAWN_PROTOCOL_VERSION)"), "\(text)")
            #expect(text.contains("keiji system --restart") && !text.contains("signal"), "\(text)")
        }
    }

    /// The helper's lines in the scheduler's log (a death, a failed launch, an ignored signal) begin with their time,
    /// as every other line there does: `keiji-scheduler: the spawn server (pid N) … starting a new one` had none.
    @Test func theHelpersLinesInTheSchedulersLogAreDated() {
        #expect(SpawnServer.dated("the spawn server (pid 7) was killed by signal 9; starting a new one", at: 1_796_644_800_123)
                == "2026-12-07T12:00:00.123Z keiji-scheduler: the spawn server (pid 7) was killed by signal 9; starting a new one\n")
    }

    @Test func aFailedWaitIsRecordedAsAFailureWithItsReason() {
        let result = RunExecutor.result(of: .waitFailed(ECHILD), termination: nil, durationMs: 12)
        #expect(result.outcome == .failed)
        #expect(result.outcome.isFailure)
        #expect(result.message?.contains("waitpid failed") == true && result.message?.contains("errno \(ECHILD)") == true,
                "\(result.message ?? "no message")")
    }
}
