import CSpawn
import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The scheduler's end of `keiji-spawn-server` (`Sources/keiji-spawn-server/main.c`): a small C helper,
/// without the Swift runtime, that starts every run and reaps it. One exec of the task per run, not a second
/// exec of a guard.
///
/// One thread, `keiji-spawn-server`, owns the socket: it starts the helper (so the helper's parent-death
/// signal is tied to a thread that never exits), sends the queued requests and reads the replies. When the
/// helper dies, the thread kills what is left of the groups it had started, ends their runs as
/// ``ExitStatus/lost(_:)``, fails the starts it had not answered, and starts a new helper. When the scheduler
/// dies, the helper sees the end of file and kills every group it started.
final class SpawnServer: Sendable {
    /// A run the helper has started: `pid` is also its process group id.
    struct Run: Sendable, Equatable {
        let tag: UInt64
        let pid: pid_t
        /// When the helper began it (wall clock, microseconds since the epoch).
        var startedAtMicroseconds: Int64 = 0
        /// The same moment on `CLOCK_MONOTONIC` (nanoseconds), which no clock step moves.
        var startedAtMonotonicNanoseconds: UInt64 = 0
    }

    /// A dated start withdrawn with ``cancel(_:)`` before it began: nothing ran.
    struct StartCancelled: Error {}

    static let shared = SpawnServer(helperPath: SpawnServer.installedPath)

    /// Where keiji-spawn-server is: next to the running executable (the scheduler, or the test bundle).
    static let installedPath: String? = {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        return (executable as NSString).deletingLastPathComponent + "/keiji-spawn-server"
    }()

    fileprivate enum Entry {
        case starting(CheckedContinuation<Run, any Error>)
        case running(pid_t, CheckedContinuation<ExitStatus, Never>?)
        case ended(ExitStatus)
    }

    fileprivate struct Outgoing: Sendable {
        var tag: UInt64
        var bytes: [UInt8]
        /// The run's log for a start; -1 for a signal or a cancel.
        var descriptor: Int32
        /// The program, for a start's error message; nil for a signal or a cancel.
        var program: String?
        /// The folder a start's run enters, for its error message when it cannot.
        var directory = ""
        /// A cancel: like a start, it goes to the next helper if this one dies before it is sent.
        var isCancel = false
    }

    fileprivate struct State {
        var entries: [UInt64: Entry] = [:]
        var outbox: [Outgoing] = []
        var nextTag: UInt64 = 1
        var serverPID: pid_t?
        /// Why the last start of the helper failed. While it is set, starts fail at once with it.
        var launchFailure: String?
        /// Starts written to a helper's socket so far (``startsSent``).
        var startsSent = 0
        /// Runs that exited while processes they left outside their group held their pipe: the helper still writes
        /// what those processes write into the run's log (``outputEnd(of:)``).
        var openOutputs: Set<UInt64> = []
        var outputWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    fileprivate let state = Mutex(State())
    /// An eventfd that wakes the thread when the outbox has something.
    fileprivate let wake: Int32
    let helperPath: String?
    /// The helper's executable, opened once here (O_PATH): every launch execs this file, so binaries replaced in
    /// place under a running scheduler never give it a helper of another protocol version. -1 when it could not be
    /// opened, with the reason in ``helperOpenError``.
    let helperDescriptor: Int32
    let helperOpenError: Int32
    /// Where the helper's deaths and the signals it ignored are said: the scheduler's stderr (its log).
    let say: @Sendable (String) -> Void

    init(helperPath: String?, say: @escaping @Sendable (String) -> Void = SpawnServer.sayOnStandardError) {
        self.helperPath = helperPath
        let opened = helperPath.map { keiji_spawn_open_executable($0) } ?? -ENOENT
        helperDescriptor = max(opened, -1)
        helperOpenError = opened < 0 ? -opened : 0
        self.say = say
        wake = keiji_spawn_wakeup_create()  // < 0 only when out of descriptors: then poll's timeout-free wait never wakes
        let thread = Thread { [self] in SpawnSupervisor(server: self).run() }
        thread.name = "keiji-spawn-server"
        thread.start()
    }

    /// The helper's pid while one runs.
    var serverPID: pid_t? { state.withLock { $0.serverPID } }

    /// How many starts have been written to a helper: a test waits on it to know a start is the helper's now,
    /// not still queued here (a cancel or a kill before then takes another path).
    var startsSent: Int { state.withLock { $0.startsSent } }

    /// Waits for the helper's first launch (the thread begins it at once) and returns why it failed, or nil once the
    /// helper runs. The scheduler refuses to start without one: every run would fail.
    func launchProblem(within limit: Duration = .seconds(10)) async -> String? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let (pid, failure) = state.withLock { ($0.serverPID, $0.launchFailure) }
            if pid != nil { return nil }
            if let failure { return failure }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return "\(helperPath ?? "keiji-spawn-server") did not start within \(limit)"
    }

    /// Why a helper that answered READY with another protocol version was refused (and killed by the scheduler: its
    /// death is not the cause to report).
    static func versionMismatch(at path: String, speaks version: Int32) -> String {
        "keiji-spawn-server at \(path) speaks protocol \(version), this scheduler \(KEIJI_SPAWN_PROTOCOL_VERSION): "
            + "restart the services: keiji system --restart"
    }

    /// A tag for ``start(_:tag:unless:)``, known before the start is queued so that it can be cancelled meanwhile.
    func newTag() -> UInt64 {
        state.withLock { s -> UInt64 in
            defer { s.nextTag += 1 }
            return s.nextTag
        }
    }

    /// Starts the run (at `request`'s instant, if dated); returns once it has been exec'd, or throws why it could
    /// not be (``StartCancelled`` after ``cancel(_:)``, or when `withdrawn` says so as the start is queued).
    /// - Parameter withdrawn: asked under the server's lock as the start is queued: a ``cancel(_:)`` that came
    ///   before then found nothing to cancel, and the caller's own record of it keeps the start from being sent.
    func start(_ request: SpawnRequest, tag: UInt64? = nil, unless withdrawn: () -> Bool = { false }) async throws -> Run {
        let tag = tag ?? newTag()
        let message = try request.message(tag: tag)
        return try await withCheckedThrowingContinuation { continuation in
            let refusal = state.withLock { s -> (any Error)? in
                if withdrawn() { return StartCancelled() }
                if s.serverPID == nil, let failure = s.launchFailure {
                    return KeijiError(.unavailable, "cannot start \(VisibleText.escaped(request.program)): \(failure)")
                }
                s.entries[tag] = .starting(continuation)
                s.outbox.append(Outgoing(tag: tag, bytes: message, descriptor: request.outputDescriptor, program: request.program,
                                         directory: request.directory))
                return nil
            }
            if let refusal {
                continuation.resume(throwing: refusal)
            } else {
                notify()
            }
        }
    }

    /// How the run ended. Its process group has been killed by then.
    func exitStatus(of run: Run) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            let ended = state.withLock { s -> ExitStatus? in
                if case .ended(let status) = s.entries[run.tag] {
                    s.entries[run.tag] = nil
                    return status
                }
                s.entries[run.tag] = .running(run.pid, continuation)
                return nil
            }
            if let ended { continuation.resume(returning: ended) }
        }
    }

    /// Whether processes the run left outside its group, once it exited, still write into its log through the helper.
    func outputIsOpen(_ run: Run) -> Bool { state.withLock { $0.openOutputs.contains(run.tag) } }

    /// Returns once nothing more of the ended run's output is written into its log: at once unless
    /// ``outputIsOpen(_:)``, else when the processes it left behind have closed its pipe, the helper cut their relay,
    /// or the helper died. Until then the file they write must not be compressed: what came later was lost.
    func outputEnd(of run: Run) async {
        await withCheckedContinuation { continuation in
            let ended = state.withLock { s -> Bool in
                guard s.openOutputs.contains(run.tag) else { return true }
                s.outputWaiters[run.tag] = continuation
                return false
            }
            if ended { continuation.resume() }
        }
    }

    /// Sends `signal` to the run's process group, unless the run has been reaped already (the helper signals
    /// only groups whose leader it has not reaped, so a reused process group id is never hit).
    func signal(_ run: Run, _ signal: Int32) {
        let queued = state.withLock { s -> Bool in
            guard case .running = s.entries[run.tag] else { return false }
            s.outbox.append(Outgoing(tag: run.tag, bytes: SpawnRequest.signalMessage(tag: run.tag, signal: signal), descriptor: -1, program: nil))
            return true
        }
        if queued { notify() }
    }

    /// Withdraws the dated start `tag` if it has not begun: its ``start(_:tag:unless:)`` then throws
    /// ``StartCancelled``. A start the helper has made already (or is making) stands, and answers as usual. A start
    /// not queued yet is the caller's to withhold (`unless`): nothing is kept here for a tag that may never come.
    func cancel(_ tag: UInt64) {
        let queued = state.withLock { s -> Bool in
            guard case .starting = s.entries[tag] else { return false }
            s.outbox.append(Outgoing(tag: tag, bytes: SpawnRequest.cancelMessage(tag: tag), descriptor: -1, program: nil, isCancel: true))
            return true
        }
        if queued { notify() }
    }

    static func sayOnStandardError(_ line: String) {
        StandardError.write(dated(line, at: WallClock().nowMilliseconds()))
    }

    /// The line as the scheduler's log has every other: after its time (these had none).
    static func dated(_ line: String, at milliseconds: Int64) -> String {
        "\(ISO8601.string(fromMilliseconds: milliseconds)) keiji-scheduler: \(line)\n"
    }

    fileprivate func notify() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }
}

/// The `keiji-spawn-server` thread's side: everything here is touched by that thread only.
private final class SpawnSupervisor {
    let server: SpawnServer
    var socket: Int32 = -1
    var helper: pid_t = 0
    /// Taken from the outbox, not yet sent, in order from `head`.
    var pending: [SpawnServer.Outgoing] = []
    var head = 0
    /// Starts sent to the helper and not answered yet: tag → program and folder.
    var unanswered: [UInt64: (program: String, directory: String)] = [:]
    var failures = 0
    var nextLaunch = ContinuousClock.now
    var launchedAt = ContinuousClock.now
    /// Whether a helper has run: the first launch's failure is ``SpawnServer/launchProblem(within:)``'s to report
    /// (the scheduler refuses to start with it), so it is not written to stderr as well.
    var launchedOnce = false
    var lastReported: String?
    /// When to look next whether the helper was stopped (``continueIfStopped()``).
    var nextStopCheck = ContinuousClock.now

    init(server: SpawnServer) { self.server = server }

    func run() -> Never {
        while true {
            if socket < 0 {
                if ContinuousClock.now >= nextLaunch { launch() }
                if socket < 0 {
                    // Backing off. After a failed launch, starts fail at once; after a death, they wait for the next helper.
                    waitForWake(until: nextLaunch)
                    take()
                    if let failure = server.state.withLock({ $0.launchFailure }) { failPendingStarts(failure) }
                    continue
                }
            }
            var fds = [pollfd(fd: server.wake, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: socket, events: Int16(POLLIN) | (head < pending.count ? Int16(POLLOUT) : 0), revents: 0)]
            let ready = poll(&fds, 2, 1000)
            continueIfStopped()
            if ready < 0 { continue }
            if fds[0].revents != 0 { drainWake() }
            take()
            if fds[1].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0, !readReplies() {
                helperDied()
                continue
            }
            if !flush() { helperDied() }
        }
    }

    // MARK: - The helper's life

    func launch() {
        guard let path = server.helperPath else {
            return launchFailed("keiji-spawn-server is not installed next to the scheduler")
        }
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            return launchFailed("socketpair: \(String(cString: strerror(errno)))")
        }
        // Room for the largest request (a seqpacket message must fit the sender's buffer whole).
        var size = Int32(KEIJI_SPAWN_MAX_MESSAGE) * 2
        setsockopt(ends[0], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        guard server.helperDescriptor >= 0 else {
            close(ends[0])
            close(ends[1])
            return launchFailed("cannot start \(path): \(String(cString: strerror(server.helperOpenError)))")
        }
        let pid = keiji_spawn_server_launch(path, server.helperDescriptor, ends[1], getpid())
        close(ends[1])
        guard pid > 0 else {
            close(ends[0])
            return launchFailed("cannot start \(path): \(String(cString: strerror(-pid)))")
        }
        var reply = keiji_spawn_reply()
        let size_ = MemoryLayout<keiji_spawn_reply>.size
        var ready = false
        var otherVersion: Int32?
        var wait = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
        let deadline = ContinuousClock.now + .seconds(60)  // generous: a loaded machine can be slow to exec
        while ContinuousClock.now < deadline {
            let n = poll(&wait, 1, 1000)
            if n < 0 && errno == EINTR { continue }
            if n == 1 {
                let answered = recv(ends[0], &reply, size_, 0) == size_ && reply.kind == UInt32(KEIJI_SPAWN_READY.rawValue)
                ready = answered && reply.value == KEIJI_SPAWN_PROTOCOL_VERSION
                if answered && !ready { otherVersion = reply.value }
                break
            }
        }
        guard ready else {
            kill(pid, SIGKILL)
            let status = Self.reap(pid)
            close(ends[0])
            if let otherVersion { return launchFailed(SpawnServer.versionMismatch(at: path, speaks: otherVersion)) }
            return launchFailed("\(path) did not start (\(status))")
        }
        _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
        socket = ends[0]
        helper = pid
        launchedAt = ContinuousClock.now
        launchedOnce = true
        server.state.withLock {
            $0.serverPID = pid
            $0.launchFailure = nil
        }
    }

    /// SIGSTOP is the one signal besides SIGKILL the helper cannot keep out, and a run's `kill -STOP $PPID` reaches
    /// it: stopped, it would hold every start and every end of a run until someone sent SIGCONT. Once a second it
    /// is asked whether it stopped, and continued.
    func continueIfStopped() {
        let now = ContinuousClock.now
        guard helper > 0, now >= nextStopCheck else { return }
        nextStopCheck = now + .seconds(1)
        let signal = keiji_spawn_child_stopped(helper)
        guard signal != 0 else { return }
        kill(helper, SIGCONT)
        server.say("the spawn server (pid \(helper)) was stopped by signal \(signal) (\(String(cString: strsignal(signal)))); continued it: "
                   + "stopped, it holds every run's start and end")
    }

    func launchFailed(_ reason: String) {
        failures += 1
        nextLaunch = ContinuousClock.now + backoff()
        server.state.withLock {
            $0.serverPID = nil
            $0.launchFailure = reason
        }
        if launchedOnce, reason != lastReported { server.say(reason) }  // once, not every retry
        lastReported = reason
        take()
        failPendingStarts(reason)
    }

    /// Restarts right away, but backs off (0.1 s doubling to 5 s) while the helper keeps failing.
    func backoff() -> Duration {
        failures == 0 ? .zero : .milliseconds(min(5000, 100 << min(failures - 1, 6)))
    }

    /// End of file from the helper: it died (or was killed). Its runs' leaders died with it (their
    /// parent-death signal); the rest of each group is killed here, and the runs end as lost.
    func helperDied() {
        close(socket)
        socket = -1
        kill(helper, SIGKILL)  // a helper that closed its socket but lives on is of no use
        let reason = "the spawn server (pid \(helper)) \(Self.reap(helper))"
        helper = 0  // reaped: its pid may be another process's now
        server.say("\(reason); starting a new one")
        let lost = ExitStatus.lost("\(reason); the run's processes were killed")
        var failedStarts: [(CheckedContinuation<SpawnServer.Run, any Error>, String)] = []
        var ended: [CheckedContinuation<ExitStatus, Never>] = []
        var outputsEnded: [CheckedContinuation<Void, Never>] = []
        server.state.withLock { s in
            s.serverPID = nil
            // The pipes of processes runs left behind died with the helper: nothing more of theirs reaches a log.
            s.openOutputs.removeAll()
            outputsEnded = Array(s.outputWaiters.values)
            s.outputWaiters.removeAll()
            for (tag, entry) in s.entries {
                switch entry {
                case .starting(let continuation):
                    if let start = unanswered[tag] {
                        s.entries[tag] = nil
                        failedStarts.append((continuation, start.program))
                    }
                case .running(let pid, let continuation):
                    kill(-pid, SIGKILL)
                    if let continuation {
                        s.entries[tag] = nil
                        ended.append(continuation)
                    } else {
                        s.entries[tag] = .ended(lost)
                    }
                case .ended:
                    break
                }
            }
        }
        unanswered.removeAll()
        // Unsent starts (and cancels of them) go to the next helper; unsent signals were for runs that are gone now.
        pending = pending[head...].filter { $0.program != nil || $0.isCancel }
        head = 0
        failures = ContinuousClock.now - launchedAt < .seconds(10) ? failures + 1 : 0
        nextLaunch = ContinuousClock.now + backoff()
        for (continuation, program) in failedStarts {
            continuation.resume(throwing: KeijiError(.unavailable, "cannot start \(VisibleText.escaped(program)): \(reason) before starting it"))
        }
        for continuation in ended { continuation.resume(returning: lost) }
        for continuation in outputsEnded { continuation.resume() }
    }

    /// Who sent a signal, as far as /proc still says: `pid 1234 (sh, a run of task notifier)`.
    static func sender(_ pid: pid_t) -> String {
        guard pid > 0 else { return "the kernel" }
        guard let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return "pid \(pid) (gone)" }
        var environment: [UInt8] = []
        let length = ProcessEnvironment.read(pid, into: &environment)
        let task = ProcessEnvironment.value(of: RunVariables.taskName, in: environment[..<length]).map { String(decoding: $0, as: UTF8.self) }
        return "pid \(pid) (\(name.trimmingCharacters(in: .newlines))\(task.map { ", a run of task \($0)" } ?? ""))"
    }

    static func reap(_ pid: pid_t) -> String {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return "could not be waited for: \(String(cString: strerror(errno)))" }
        }
        return switch ExitStatus(waitStatus: status) {
        case .signaled(let signal): "was killed by signal \(signal)"
        case .exited(let code): "exited with status \(code)"
        default: "ended"
        }
    }

    // MARK: - Messages

    func drainWake() {
        var count: UInt64 = 0
        _ = read(server.wake, &count, 8)
    }

    func waitForWake(until deadline: ContinuousClock.Instant) {
        let left = ContinuousClock.now.duration(to: deadline)
        let milliseconds = max(0, min(Int32(5000), Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
        var fd = pollfd(fd: server.wake, events: Int16(POLLIN), revents: 0)
        if poll(&fd, 1, milliseconds) > 0 { drainWake() }
    }

    /// Moves the outbox into `pending`.
    func take() {
        let taken = server.state.withLock { s -> [SpawnServer.Outgoing] in
            defer { s.outbox.removeAll(keepingCapacity: true) }
            return s.outbox
        }
        if head == pending.count {
            pending = taken
            head = 0
        } else {
            pending += taken
        }
    }

    func failPendingStarts(_ reason: String) {
        var failed: [(CheckedContinuation<SpawnServer.Run, any Error>, String)] = []
        server.state.withLock { s in
            for message in pending[head...] {
                guard let program = message.program, case .starting(let continuation) = s.entries[message.tag] else { continue }
                s.entries[message.tag] = nil
                failed.append((continuation, program))
            }
        }
        pending.removeAll()
        head = 0
        for (continuation, program) in failed { continuation.resume(throwing: KeijiError(.unavailable, "cannot start \(VisibleText.escaped(program)): \(reason)")) }
    }

    /// Sends what it can without blocking. Returns false if the helper is gone.
    func flush() -> Bool {
        while head < pending.count {
            let message = pending[head]
            let result = message.bytes.withUnsafeBytes { keiji_spawn_send(socket, $0.baseAddress, $0.count, message.descriptor) }
            if result == -EAGAIN || result == -ENOBUFS { return true }  // poll waits for room
            if result == -EPIPE || result == -ECONNRESET || result == -ENOTCONN { return false }
            head += 1
            guard let program = message.program else { continue }
            if result == 0 {
                unanswered[message.tag] = (program, message.directory)
                server.state.withLock { $0.startsSent += 1 }
            } else {
                // This request cannot be sent (too large for the socket, say); the others go on.
                takeStart(message.tag)?.resume(throwing: KeijiError(ResourceShortage.code(errno: -result, otherwise: .spawn),
                                                                    "cannot start \(VisibleText.escaped(program)): \(String(cString: strerror(-result)))"))
            }
        }
        pending.removeAll(keepingCapacity: true)
        head = 0
        return true
    }

    /// The waiting caller of start `tag`, whose entry goes (nil if it is not waiting for its start any more).
    func takeStart(_ tag: UInt64) -> CheckedContinuation<SpawnServer.Run, any Error>? {
        server.state.withLock { s in
            guard case .starting(let continuation) = s.entries[tag] else { return nil }
            s.entries[tag] = nil
            return continuation
        }
    }

    /// Reads every reply there is. Returns false at the end of file (the helper is gone).
    func readReplies() -> Bool {
        var reply = keiji_spawn_reply()
        let size = MemoryLayout<keiji_spawn_reply>.size
        while true {
            let n = recv(socket, &reply, size, Int32(MSG_DONTWAIT))
            if n == size {
                handle(reply)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
    }

    func handle(_ reply: keiji_spawn_reply) {
        let tag = reply.tag
        switch reply.kind {
        case UInt32(KEIJI_SPAWN_STARTED.rawValue):
            unanswered[tag] = nil
            let run = SpawnServer.Run(tag: tag, pid: reply.pid, startedAtMicroseconds: Int64(clamping: reply.time_ns / 1000),
                                      startedAtMonotonicNanoseconds: reply.monotonic_ns)
            let continuation = server.state.withLock { s -> CheckedContinuation<SpawnServer.Run, any Error>? in
                guard case .starting(let continuation) = s.entries[tag] else { return nil }
                s.entries[tag] = .running(reply.pid, nil)
                return continuation
            }
            continuation?.resume(returning: run)
        case UInt32(KEIJI_SPAWN_FAILED.rawValue):
            let start = unanswered.removeValue(forKey: tag) ?? (program: "the run", directory: "")
            let reason = String(cString: strerror(reply.value))
            let message = reply.failed_step == UInt32(KEIJI_SPAWN_STEP_CHDIR.rawValue)
                ? "cannot enter the task's folder \(start.directory): \(reason)" : "cannot start \(VisibleText.escaped(start.program)): \(reason)"
            // The helper's fork, pipe or exec short of processes, memory or descriptors: the next slot may start.
            takeStart(tag)?.resume(throwing: KeijiError(ResourceShortage.code(errno: reply.value, otherwise: .spawn), message))
        case UInt32(KEIJI_SPAWN_CANCELLED.rawValue):
            unanswered[tag] = nil
            takeStart(tag)?.resume(throwing: SpawnServer.StartCancelled())
        case UInt32(KEIJI_SPAWN_IGNORED_SIGNAL.rawValue):
            // A task's `kill -USR1 $PPID` killed the helper and every run it led; now it is only said.
            server.say("the spawn server (pid \(helper)) ignored signal \(reply.value) (\(String(cString: strsignal(reply.value)))) from \(Self.sender(reply.pid))")
        case UInt32(KEIJI_SPAWN_EXITED.rawValue):
            let status = reply.wait_errno != 0 ? ExitStatus.waitFailed(reply.wait_errno) : ExitStatus(waitStatus: reply.value)
            let continuation = server.state.withLock { s -> CheckedContinuation<ExitStatus, Never>? in
                guard case .running(_, let continuation) = s.entries[tag] else { return nil }
                if reply.output_open != 0 { s.openOutputs.insert(tag) }  // known before the exit is: the log's writer stays
                if let continuation {
                    s.entries[tag] = nil
                    return continuation
                }
                s.entries[tag] = .ended(status)
                return nil
            }
            continuation?.resume(returning: status)
        case UInt32(KEIJI_SPAWN_OUTPUT_ENDED.rawValue):
            let waiter = server.state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.openOutputs.remove(tag)
                return s.outputWaiters.removeValue(forKey: tag)
            }
            waiter?.resume()
        default:
            break
        }
    }
}
