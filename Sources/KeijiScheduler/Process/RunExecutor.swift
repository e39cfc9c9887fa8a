import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Runs one attempt of a task: spawns it in its own process group with its output appended to the task's
/// log as it is written, enforces the timeout (SIGTERM to the group, SIGKILL after the grace period), and
/// reports how it ended. Stop requests go through ``RunHandle``.
struct RunExecutor: Sendable {
    struct Result: Sendable {
        var outcome: RunOutcome
        var status: ExitStatus?
        var durationMs: Int64
        var message: String?
    }

    let definition: TaskDefinition
    let runID: String
    let slot: Int64?
    let logDescriptor: Int32
    let baseEnvironment: [String: String]
    /// Passed to the task as KEIJI_ERROR_FILE: the SDK writes a thrown error's message there, and a failed
    /// run's message becomes `<that message> (exit status N)` instead of only the status.
    let errorFile: String?

    /// The most of an error file that is read (the SDK writes at most 2048 bytes).
    static let errorMessageLimit = 2048

    func run(handle: RunHandle) async -> Result {
        let started = ContinuousClock.now
        func elapsed() -> Int64 {
            let d = ContinuousClock.now - started
            return d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        }
        let (path, arguments): (String, [String]) = switch definition.action {
        case .binary(let path): (path, ["--run"])
        case .command(let command): ("/bin/sh", ["-c", command])
        }
        var environment = baseEnvironment
        for (key, value) in (try? DotEnv.load(definition.directory + "/.env")) ?? [:] { environment[key] = value }
        environment["KEIJI_RUN_ID"] = runID
        environment["KEIJI_TASK_NAME"] = definition.name.rawValue
        environment["KEIJI_SCHEDULER_PID"] = String(getpid())
        if let slot { environment["KEIJI_SLOT"] = ISO8601.string(fromSeconds: slot) }
        if let errorFile {
            unlink(errorFile)
            environment["KEIJI_ERROR_FILE"] = errorFile
        }
        defer { if let errorFile { unlink(errorFile) } }
        // Through the guard when it is installed beside the scheduler (it always is, except in odd setups).
        var program = path
        var argv = arguments
        if let guardPath = RunGuard.path {
            program = guardPath
            argv = [String(TimeArithmetic.milliseconds(fromSeconds: definition.policy.graceSeconds)), path] + arguments
        }

        let pid: pid_t
        do {
            pid = try await ProcessSpawner.shared.spawn(.init(
                path: program, arguments: argv, environment: environment,
                directory: definition.directory, outputDescriptor: logDescriptor))
        } catch {
            return Result(outcome: .spawnFailed, status: nil, durationMs: elapsed(), message: "\(error)")
        }
        ChildReaper.shared.adopt(pid)
        handle.attach(pid: pid)

        let timeout = definition.policy.timeoutSeconds
        let grace = definition.policy.graceSeconds
        let watchdog = Task {
            guard let timeout else { return }
            try await Task.sleep(for: .milliseconds(TimeArithmetic.milliseconds(fromSeconds: timeout)))
            handle.terminate(reason: .timedOut, grace: grace)
        }
        let status = await ChildReaper.shared.status(of: pid)
        watchdog.cancel()
        handle.detach()
        // Anything the task left behind in its group goes with it.
        kill(-pid, SIGKILL)

        return Self.result(of: status, terminationReason: handle.terminationReason, timeout: timeout, durationMs: elapsed(),
                           errorFile: errorFile)
    }

    /// What a run's end records for a reaped status: a stop or timeout wins, then the exit status. A failed
    /// `waitpid` is a failure with its reason, never a success.
    static func result(of status: ExitStatus, terminationReason: RunOutcome?, timeout: Double?, durationMs duration: Int64,
                       errorFile: String? = nil) -> Result {
        if let reason = terminationReason {
            let text = reason == .timedOut ? "timed out after \(timeout.map { "\($0)" } ?? "?") s" : "stopped on request"
            return Result(outcome: reason, status: status, durationMs: duration, message: text)
        }
        switch status {
        case .exited(0): return Result(outcome: .succeeded, status: status, durationMs: duration, message: nil)
        case .exited(let code): return Result(outcome: .failed, status: status, durationMs: duration, message: thrown("exit status \(code)", errorFile: errorFile))
        case .signaled(let signal): return Result(outcome: .failed, status: status, durationMs: duration, message: thrown("killed by signal \(signal)", errorFile: errorFile))
        case .waitFailed(let code):
            return Result(outcome: .failed, status: status, durationMs: duration,
                          message: "the exit status is unknown: waitpid failed: \(String(cString: strerror(code))) (errno \(code))")
        }
    }

    /// `status`, preceded by the message the task left in its error file, if any (one line, bounded).
    private static func thrown(_ status: String, errorFile: String?) -> String {
        guard let errorFile else { return status }
        let fd = open(errorFile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return status }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: Self.errorMessageLimit)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return status }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        let line = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
            .trimmingCharacters(in: .whitespaces)
        return line.isEmpty ? status : "\(line) (\(status))"
    }
}

/// Where `keiji-run-guard` is: next to the running executable (the scheduler, or the test bundle).
enum RunGuard {
    static let path: String? = {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let candidate = (executable as NSString).deletingLastPathComponent + "/keiji-run-guard"
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }()
}

/// A live run's process group, for stopping it from outside (a stop command, shutdown, a timeout).
final class RunHandle: Sendable {
    private struct State {
        var pid: pid_t?
        var reason: RunOutcome?
        var pendingGrace: Double?
    }

    private let state = Mutex(State())

    var terminationReason: RunOutcome? { state.withLock { $0.reason } }

    func attach(pid: pid_t) {
        let pending = state.withLock { s -> Double? in
            s.pid = pid
            return s.pendingGrace
        }
        if let grace = pending, let reason = terminationReason { terminate(reason: reason, grace: grace) }
    }

    func detach() { state.withLock { $0.pid = nil } }

    /// SIGTERM to the whole process group, SIGKILL after `grace` seconds if it is still there. Before the
    /// process exists, the request waits for `attach`.
    func terminate(reason: RunOutcome, grace: Double) {
        let pid = state.withLock { s -> pid_t? in
            if s.reason == nil { s.reason = reason }
            if s.pid == nil { s.pendingGrace = grace }
            return s.pid
        }
        guard let pid else { return }
        kill(-pid, SIGTERM)
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(TimeArithmetic.milliseconds(fromSeconds: grace)))
            if let self, self.state.withLock({ $0.pid == pid }) { kill(-pid, SIGKILL) }
        }
    }
}
