import Foundation
import KeijiCore
import KeijiJournal
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Runs one attempt of a task: has keiji-spawn-server start it in its own process group with its output
/// appended to the task's log as it is written, enforces the timeout (SIGTERM to the group, SIGKILL after the
/// grace period), and reports how it ended. Stop requests go through ``RunHandle``.
struct RunExecutor: Sendable {
    struct Result: Sendable {
        var outcome: RunOutcome
        var status: ExitStatus?
        var durationMs: Int64
        var message: String?
        /// A line for the run's log that the end's message does not hold: an error file that was ignored.
        var warning: String? = nil
        /// It could not start for want of a resource at that moment (``RunEnd/transient``).
        var transient = false

        /// A run that could not start for `error`: transient when it was out of a resource (``KeijiError/Code/outOfResources``).
        static func couldNotStart(_ error: any Error) -> Result {
            Result(outcome: .spawnFailed, status: nil, durationMs: 0, message: "\(error)",
                   transient: (error as? KeijiError)?.code == .outOfResources)
        }
    }

    let definition: TaskDefinition
    let runID: String
    let slot: Int64?
    let logDescriptor: Int32
    /// The task's environment without the per-run variables (``TaskEnvironments``).
    let environment: EnvironmentBlock
    /// Passed to the task as KEIJI_ERROR_FILE: the SDK writes a thrown error's message there, and a failed
    /// run's message becomes `<that message> (exit status N)` instead of only the status.
    let errorFile: String?
    /// Passed as KEIJI_NODE: the scheduler that runs it (`NODE_NAME`), which in a cluster is one of several.
    var node: String = ""
    var server: SpawnServer = .shared
    /// Kills what is left of a run keiji ended (``OrphanReaper``); a test puts a slow one in.
    var sweep: @Sendable (String) async -> Void = { await OrphanReaper.sweep(run: $0) }

    /// The most of an error file that is read (the SDK writes at most 2048 bytes).
    static let errorMessageLimit = 2048

    /// How ``begin(handle:notBeforeMilliseconds:)`` came out.
    enum Beginning: Sendable {
        /// The process runs; ``wait(for:handle:)`` follows.
        case started(SpawnServer.Run)
        /// Withdrawn before it began (``RunHandle/cancelStart(_:)``): nothing ran.
        case notBegun(RunHandle.NotBegun)
        /// It could not be started: how the run ends.
        case failed(Result)
    }

    /// Runs the attempt from start to end, at once.
    func run(handle: RunHandle) async -> Result {
        switch await begin(handle: handle) {
        case .started(let run): return await wait(for: run, handle: handle)
        case .notBegun: return Result(outcome: .stopped, status: nil, durationMs: 0, message: "stopped before it began")
        case .failed(let result): return result
        }
    }

    /// Has the spawn server start the run, at `notBeforeMilliseconds` (wall clock) if given: the server holds
    /// the start until then, so the run begins at its slot however busy the scheduler is at that moment.
    func begin(handle: RunHandle, notBeforeMilliseconds: Int64? = nil) async -> Beginning {
        let plan = ExecPlan(definition.action)
        var environment = environment
        environment.append("KEIJI_RUN_ID", runID)
        environment.append("KEIJI_TASK_NAME", definition.name.rawValue)
        environment.append("KEIJI_SCHEDULER_PID", String(getpid()))
        environment.append("KEIJI_NODE", node)
        if let slot { environment.append("KEIJI_SLOT", ISO8601.string(fromSeconds: slot)) }
        if let errorFile { environment.append("KEIJI_ERROR_FILE", errorFile) }  // none there yet (``RunErrorFiles``)
        if !definition.directory.isEmpty { environment.append("PWD", definition.directory) }  // where the spawn server starts it
        let request = SpawnRequest(program: plan.program, arguments: plan.arguments, environment: environment, directory: definition.directory,
                                   outputDescriptor: logDescriptor, searchPath: plan.searchPath,
                                   graceMilliseconds: UInt32(clamping: TimeArithmetic.milliseconds(fromSeconds: definition.policy.graceSeconds)),
                                   notBeforeMilliseconds: notBeforeMilliseconds)
        var resent = false
        while true {
            let tag = server.newTag()
            if let notBegun = handle.expectStart(tag: tag, server: server) { return .notBegun(notBegun) }
            let answer: Swift.Result<SpawnServer.Run, any Error>
            // A withdrawal between `expectStart` and the start's queueing is seen as it is queued (the server's lock).
            do { answer = .success(try await server.start(request, tag: tag, unless: { handle.notBegun != nil })) } catch { answer = .failure(error) }
            handle.startAnswered()
            switch answer {
            case .success(let run):
                handle.attach(run, server: server)
                return .started(run)
            case .failure(is SpawnServer.StartCancelled):
                return .notBegun(handle.notBegun ?? .schedulerStopping)
            case .failure(let error as KeijiError) where error.code == .unavailable:
                // The spawn server died (or could not be started) first. A dated start whose instant had not come
                // cannot have begun: it goes to the next helper (once), or ends unbegun if it was withdrawn meanwhile.
                if let notBefore = notBeforeMilliseconds, WallClock().nowMilliseconds() < notBefore {
                    if let notBegun = handle.notBegun { return .notBegun(notBegun) }
                    if !resent {
                        resent = true
                        continue
                    }
                }
                // Keiji's fault, not the task's (see `.lost`).
                removeErrorFile()
                return .failed(Result(outcome: .interrupted, status: nil, durationMs: 0, message: "not started: \(error)"))
            case .failure(let error):
                removeErrorFile()
                return .failed(.couldNotStart(error))
            }
        }
    }

    /// A run that did not start may still have made its error file (a helper that died after the exec).
    private func removeErrorFile() {
        if let errorFile { unlink(errorFile) }
    }

    /// Enforces the timeout of a started run and reports how it ended; its duration and its timeout count from
    /// the moment the helper started it, not from when this hears of it.
    func wait(for run: SpawnServer.Run, handle: RunHandle) async -> Result {
        let heard = ContinuousClock.now
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let monotonicNow = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        let sinceStartMs = Int64(monotonicNow > run.startedAtMonotonicNanoseconds ? (monotonicNow - run.startedAtMonotonicNanoseconds) / 1_000_000 : 0)
        defer { removeErrorFile() }
        let grace = definition.policy.graceSeconds
        let timeout = definition.policy.timeoutSeconds
        let watchdog = timeout.map { timeout in
            Task {
                try await Task.sleep(for: .milliseconds(max(0, TimeArithmetic.milliseconds(fromSeconds: timeout) - sinceStartMs)))
                handle.terminate(reason: .timedOut, grace: grace, because: "timed out after \(timeout) s")
            }
        }
        // The server kills what the run left in its group before it reports the exit.
        let status = await server.exitStatus(of: run)
        watchdog?.cancel()
        handle.detach()
        let elapsed = ContinuousClock.now - heard
        let durationMs = sinceStartMs + elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        // Its group is killed, but a process that left it (`setsid`, a daemon's double fork) still carries the run ID:
        // killed too when keiji ended the run (a timeout, a stop, a delete, the scheduler's stop) or its helper died.
        // A run that ended by itself keeps such processes, as under cron: a scan of /proc at every end would cost more
        // than the run. Not counted in the run's duration, nor awaited past a bound (``OrphanReaper/sweepBound``).
        var lost = false
        if case .lost = status { lost = true }
        if lost || handle.termination != nil { await OrphanReaper.sweep(run: runID, atMost: OrphanReaper.sweepBound, sweeping: sweep) }
        return Self.result(of: status, termination: handle.termination, durationMs: durationMs, errorFile: errorFile) {
            RunOutputTail.lastLine(in: logDescriptor, runID: runID)
        }
    }

    /// What a run's end records for a reaped status: a stop or timeout wins, then the exit status. A failed
    /// `waitpid` is a failure with its reason, never a success. `lastLine`: the run's last line of output, asked
    /// only of a failure with no error file.
    static func result(of status: ExitStatus, termination: RunHandle.Termination?, durationMs duration: Int64,
                       errorFile: String? = nil, lastLine: () -> String? = { nil }) -> Result {
        if let termination {
            return Result(outcome: termination.reason, status: status, durationMs: duration, message: termination.message)
        }
        switch status {
        case .exited(0): return Result(outcome: .succeeded, status: status, durationMs: duration, message: nil)
        case .exited(let code): return failed("exit status \(code)", status: status, durationMs: duration, errorFile: errorFile, lastLine: lastLine)
        case .signaled(let signal): return failed("killed by signal \(signal)", status: status, durationMs: duration, errorFile: errorFile, lastLine: lastLine)
        case .waitFailed(let code):
            return Result(outcome: .failed, status: status, durationMs: duration,
                          message: "the exit status is unknown: waitpid failed: \(String(cString: strerror(code))) (errno \(code))")
        case .lost(let reason):
            // keiji's own helper died, not the task: like a run a scheduler crash interrupted, it is no failure
            // of the task's (no retry, no error flag); its next slot runs as usual.
            return Result(outcome: .interrupted, status: status, durationMs: duration, message: "interrupted, the exit status is unknown: \(reason)")
        }
    }

    /// A failure whose message is `status` preceded by the message the task left in its error file (one line,
    /// bounded), or else by its last line of output (``RunOutputTail``), if any.
    private static func failed(_ text: String, status: ExitStatus, durationMs: Int64, errorFile: String?, lastLine: () -> String?) -> Result {
        let (thrown, ignored) = errorFile.map(errorMessage) ?? (nil, nil)
        let line = thrown ?? lastLine()
        return Result(outcome: .failed, status: status, durationMs: durationMs, message: line.map { "\($0) (\(text))" } ?? text, warning: ignored)
    }

    /// The message in the error file; or, when something other than a regular file is there (a FIFO, a link, a
    /// device: ``RegularFile``), nothing and why it was ignored.
    private static func errorMessage(in errorFile: String) -> (message: String?, ignored: String?) {
        switch RegularFile.read(errorFile, limit: Self.errorMessageLimit) {
        case .success(let bytes):
            return (bytes.isEmpty ? nil : RunOutputTail.clean(Substring(String(decoding: bytes, as: UTF8.self)), limit: Self.errorMessageLimit), nil)
        case .failure(.notRegular(let mode)):
            return (nil, "its KEIJI_ERROR_FILE was \(FileKind.described(mode)), not a file: ignored")
        case .failure:
            return (nil, nil)
        }
    }
}

/// A live run's process group, for stopping it from outside (a stop command, shutdown, a timeout), and before
/// that its start, which may be withdrawn while the spawn server holds it for its slot.
final class RunHandle: Sendable {
    /// Why a run must not begin after all, and so how its end is recorded.
    enum NotBegun: Sendable, Equatable {
        /// The scheduler is stopping: ended unbegun, its claim left unfinished (a stopped node's unbegun slots
        /// are taken over), as ``SchedulerEngine/endUnbegun(_:because:)`` does.
        case stop(reason: String)
        /// Its task was disabled, deleted or put in error: ended as stopped with this message.
        case task(message: String)

        static let schedulerStopping = NotBegun.stop(reason: "the scheduler stopped")

        /// What the run's end says.
        var message: String {
            switch self {
            case .stop(let reason): RunEnd.notBegunMessage(reason)
            case .task(let message): message
            }
        }
    }

    private struct State {
        var run: SpawnServer.Run?
        var server: SpawnServer?
        var termination: Termination?
        var pendingGrace: Double?
        /// The start sent to `server` and not answered yet.
        var startTag: UInt64?
        var notBegun: NotBegun?
    }

    private let state = Mutex(State())

    /// How the run was asked to end (a timeout or a stop), and why, as its end says it.
    struct Termination: Sendable {
        var reason: RunOutcome
        var message: String
    }

    var termination: Termination? { state.withLock { $0.termination } }

    /// Why the run was asked not to begin (``cancelStart(_:)``), if it was.
    var notBegun: NotBegun? { state.withLock { $0.notBegun } }

    /// Whether its start has been sent (or is being sent) and not answered: a dated start the server holds.
    var isAwaitingStart: Bool { state.withLock { $0.startTag != nil && $0.run == nil } }

    /// Notes the start about to be sent as `tag` on `server`, so that
    /// ``cancelStart(_:)`` can withdraw it; returns why it must not be sent at all, if it was cancelled already.
    func expectStart(tag: UInt64, server: SpawnServer) -> NotBegun? {
        state.withLock { s in
            guard s.notBegun == nil else { return s.notBegun }
            s.startTag = tag
            s.server = server
            return nil
        }
    }

    func startAnswered() { state.withLock { $0.startTag = nil } }

    /// Withdraws the run's start unless its process exists; a run that has begun runs on (a stop terminates it).
    /// A dated start the server is making as this is asked answers `started`, and that run goes on too.
    func cancelStart(_ why: NotBegun) {
        let withdraw = state.withLock { s -> (UInt64, SpawnServer)? in
            guard s.run == nil else { return nil }
            if s.notBegun == nil { s.notBegun = why }
            return s.startTag.flatMap { tag in s.server.map { (tag, $0) } }
        }
        if let (tag, server) = withdraw { server.cancel(tag) }
    }

    func attach(_ run: SpawnServer.Run, server: SpawnServer) {
        let pending = state.withLock { s -> Double? in
            s.run = run
            s.server = server
            return s.pendingGrace
        }
        if let grace = pending, let termination { terminate(reason: termination.reason, grace: grace, because: termination.message) }
    }

    func detach() { state.withLock { $0.run = nil } }

    /// SIGTERM to the whole process group, SIGKILL after `grace` seconds if it is still there. Before the
    /// process exists, the request waits for `attach`. `message`: why, as the run's end says it (the first
    /// request's reason and message stand).
    func terminate(reason: RunOutcome, grace: Double, because message: String) {
        let target = state.withLock { s -> (SpawnServer.Run, SpawnServer)? in
            if s.termination == nil { s.termination = Termination(reason: reason, message: message) }
            guard let run = s.run, let server = s.server else {
                s.pendingGrace = grace
                return nil
            }
            return (run, server)
        }
        guard let (run, server) = target else { return }
        server.signal(run, SIGTERM)
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(TimeArithmetic.milliseconds(fromSeconds: grace)))
            if let self, self.state.withLock({ $0.run == run }) { server.signal(run, SIGKILL) }
        }
    }
}
