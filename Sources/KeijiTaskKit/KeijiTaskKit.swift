// KeijiTaskKit: the tiny SDK a keiji task program imports. It has no dependencies, so a task builds in
// seconds, and `keiji init` ships this very file into ~/keiji/sdk (no network needed).
//
//     // schedule.swift
//     let schedule = Schedule.every(10).seconds
//     // or: Schedule.on(.friday).at("10:00PM"), Schedule.cron("*/5 * * * *")
//
//     // main.swift
//     await TaskMain.run(schedule: schedule, function: function)
//
// Policies ride on the schedule (a `keiji task --build` flag overrides them):
//
//     let schedule = Schedule.on(.monday).at("09:00").timeZone("Europe/Paris").timeout(60).retries(2)
//
// `<task> --schedule` prints the schedule and policies as JSON (what `keiji task --build` reads);
// `<task> --run` runs `function()`. Output is line-buffered, so each line reaches the task log as it is
// printed, and it is flushed on exit and on SIGTERM (`keiji task --stop`, a timeout). A SIGTERM cancels the
// task running `function()` (`Task.isCancelled`, `CancellationError` from `Task.sleep`, `defer`s run), and the
// program exits 143 when it returns; the scheduler's SIGKILL after the grace period (`grace(_:)`) bounds the wait,
// and a second SIGTERM exits at once. A thrown error prints `task failed: <message>` and exits 1; the message is
// also written to the file named by KEIJI_ERROR_FILE, which the scheduler reads into the task's ErrorTxt.

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif

/// When a task runs: the seed's builder (`every(n).seconds`, `on(day).at(time)`), plus cron, and the policies
/// for its runs (each one optional: what the SDK leaves out, the task keeps from its previous build).
public struct Schedule: Sendable {
    /// The schedule's own JSON fields, e.g. `"every":10,"unit":"seconds"`.
    let fields: String
    /// The policy fields, in the order they were set (a later one of the same key wins when read).
    let policy: [String]
    /// Calls whose value JSON cannot carry or keiji would misread (`timeout(.infinity)` printed `inf`, and keiji
    /// said only "not valid JSON"): `--schedule` names them and fails.
    var refusals: [String] = []

    /// The JSON keiji's scheduler reads, e.g. `{"every":10,"unit":"seconds","policy":{"retries":2}}`.
    public var json: String { "{" + fields + ",\"policy\":{" + policy.joined(separator: ",") + "}}" }

    public static func every(_ count: Int) -> Interval { Interval(count: count) }
    public static func on(_ days: Day...) -> DayTime { DayTime(days: days) }
    public static func cron(_ expression: String) -> Schedule {
        Schedule(fields: "\"cron\":\(quoted(expression))", policy: [])
    }

    public struct Interval: Sendable {
        let count: Int
        public var seconds: Schedule { unit("seconds") }
        public var minutes: Schedule { unit("minutes") }
        public var hours: Schedule { unit("hours") }
        func unit(_ name: String) -> Schedule { Schedule(fields: "\"every\":\(count),\"unit\":\"\(name)\"", policy: []) }
    }

    public struct DayTime: Sendable {
        let days: [Day]
        /// `"10:00PM"` (12-hour) or `"22:00"` (24-hour).
        public func at(_ time: String) -> Schedule {
            Schedule(fields: "\"days\":[\(days.map { quoted($0.rawValue) }.joined(separator: ","))],\"at\":\(quoted(time))", policy: [])
        }
    }

    public enum Day: String, Sendable {
        case monday = "Monday", tuesday = "Tuesday", wednesday = "Wednesday", thursday = "Thursday"
        case friday = "Friday", saturday = "Saturday", sunday = "Sunday"
    }

    /// A slot that comes while the previous run is still going: skipped (the default) or run anyway.
    public enum Overlap: String, Sendable { case skip, allow }
    /// Slots missed while the scheduler was down: none run, one run (the default), or all (up to a limit).
    public enum CatchUp: String, Sendable { case skip, once, all }

    /// Reads the schedule in this IANA zone (e.g. "Europe/Paris") instead of the settings' TIME_ZONE.
    public func timeZone(_ identifier: String) -> Schedule { with("timeZone", Self.quoted(identifier)) }
    /// Delays each firing by a stable pseudo-random 0…`seconds`.
    public func jitter(_ seconds: Int) -> Schedule { with("jitterSeconds", "\(seconds)") }
    /// Stops a run (SIGTERM, then SIGKILL after the grace period) after `seconds`; `nil`: no time limit (clears one
    /// kept from an earlier build, as `--timeout none` does). `0` is refused, as `--timeout 0` is: it used to mean no
    /// limit, which a computed timeout that came out as 0 got without a word.
    public func timeout(_ seconds: Double?) -> Schedule {
        guard let seconds else { return with("timeoutSeconds", "0") }
        if seconds == 0 { return refused("timeout(0): a run needs more than 0 s (timeout(nil) for no time limit)") }
        return with("timeoutSeconds", seconds, call: "timeout")
    }
    /// How long a stopped run has between SIGTERM and SIGKILL: a Swift task's `function()` is cancelled at the
    /// SIGTERM, and this is how long it has to return.
    public func grace(_ seconds: Double) -> Schedule { with("graceSeconds", seconds, call: "grace") }
    /// Further attempts after a failure, `backoff × 2^(attempt-1)` seconds apart.
    public func retries(_ count: Int, backoff seconds: Double? = nil) -> Schedule {
        let retried = with("retries", "\(count)")
        return seconds.map { retried.with("retryBackoffSeconds", $0, call: "retries(backoff:)") } ?? retried
    }
    public func overlap(_ policy: Overlap) -> Schedule { with("overlap", Self.quoted(policy.rawValue)) }
    public func catchUp(_ policy: CatchUp, limit: Int? = nil) -> Schedule {
        let caught = with("catchUp", Self.quoted(policy.rawValue))
        return limit.map { caught.with("catchUpLimit", "\($0)") } ?? caught
    }
    /// Whether a run that a scheduler crash interrupted runs again when it restarts (default: yes).
    public func rerunInterrupted(_ rerun: Bool) -> Schedule { with("rerunInterrupted", "\(rerun)") }
    /// Keep scheduling after a failed run instead of waiting for `keiji task --resolve` (default: no).
    public func continueOnError(_ keepGoing: Bool = true) -> Schedule { with("continueOnError", "\(keepGoing)") }

    func with(_ key: String, _ value: String) -> Schedule {
        Schedule(fields: fields, policy: policy.filter { !$0.hasPrefix("\"\(key)\":") } + ["\"\(key)\":\(value)"], refusals: refusals)
    }

    /// A number of seconds; `inf` or `nan` is no JSON number, and is refused naming the call.
    func with(_ key: String, _ seconds: Double, call: String) -> Schedule {
        seconds.isFinite ? with(key, "\(seconds)") : refused("\(call)(\(seconds)): not a finite number of seconds")
    }

    func refused(_ reason: String) -> Schedule {
        Schedule(fields: fields, policy: policy, refusals: refusals + [reason])
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += scalar.value < 0x20 ? " " : String(scalar)
            }
        }
        return out + "\""
    }
}

/// A failure with a message, for `throw TaskError("disk full")`: the message becomes the task's ErrorTxt.
public struct TaskError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The entry point of a task program.
public enum TaskMain {
    /// The most of a thrown message that goes into KEIJI_ERROR_FILE (the scheduler reads no more).
    static let errorMessageLimit = 2048

    public static func run(schedule: Schedule, function: () async throws -> Void) async -> Never {
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.contains("--schedule") {
            guard schedule.refusals.isEmpty else {
                fputs("error: " + schedule.refusals.joined(separator: "; ") + "\n", stderr)
                exit(1)
            }
            print(schedule.json)
            exit(0)
        }
        guard arguments.contains("--run") else {
            fputs("valid arguments: --schedule, --run\n", stderr)
            exit(64)
        }
        withUnsafeCurrentTask { running = $0 }  // before the SIGTERM handler: the task a stop cancels
        streamOutput()
        do {
            try await function()
            exit(stopRequested ? 128 + SIGTERM : 0)
        } catch {
            // Before the failure line (stderr is unbuffered): what the task printed first came after it in the log.
            fflush(stdout)
            if stopRequested, error is CancellationError { exit(128 + SIGTERM) }
            let message = "\(error)"
            fputs("task failed: \(message)\n", stderr)
            if stopRequested { exit(128 + SIGTERM) }  // stopped: the scheduler's reason is the run's error
            reportError(message)
            exit(1)
        }
    }

    /// The task running `function()`, cancelled by a SIGTERM. Kept past `withUnsafeCurrentTask`'s closure, which its
    /// documentation warns against because a task may end before such a reference is used: this one is the
    /// program's main task, which never ends before `exit`. A `Task {}` holding `function()` would need the
    /// closure `@Sendable` and escaping, which the SDK's callers do not have to give.
    nonisolated(unsafe) static var running: UnsafeCurrentTask?
    /// Set by the first SIGTERM, before `running` is cancelled: the program then exits 143.
    nonisolated(unsafe) static var stopRequested = false
    /// The SIGTERM handler writes a byte here; ``watchForStop()``'s thread reads it.
    nonisolated(unsafe) static var stopPipe: (read: Int32, write: Int32) = (-1, -1)
    nonisolated(unsafe) static var signalsSeen: Int32 = 0

    /// Standard output is the task log, a file, so C stdio would buffer it in blocks: lines would show only
    /// at exit, after stderr's, and be lost to a SIGTERM. Line buffering writes each line as it is printed.
    /// A SIGTERM is handed to a thread of its own (a signal handler may not call into the Swift runtime), which
    /// writes a partial last line and cancels `function()`'s task: exiting in the handler, as the SDK did, left a
    /// task's `grace` nothing to clean up in. A second SIGTERM writes the partial line and exits with the
    /// conventional 128+15 at once; it flushes only if no other thread is inside a stdio call (`ftrylockfile`), so
    /// it can never deadlock on the lock.
    static func streamOutput() {
        setvbuf(stdout, nil, _IOLBF, 0)
        setvbuf(stderr, nil, _IONBF, 0)
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return exitOnSignal() }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }  // not inherited by what the task runs
        stopPipe = (ends[0], ends[1])
        #if canImport(Glibc)
        var watcher = pthread_t()
        #else
        var watcher: pthread_t?
        #endif
        guard pthread_create(&watcher, nil, { _ in TaskMain.watchForStop(); return nil }, nil) == 0 else { return exitOnSignal() }
        // A static is set up at its first use (swift_once), which a signal handler must not be the one to do.
        signalsSeen = 0
        signal(SIGTERM) { _ in
            TaskMain.signalsSeen += 1
            if TaskMain.signalsSeen > 1 { TaskMain.flushAndExit() }
            var byte: UInt8 = 1
            _ = write(TaskMain.stopPipe.write, &byte, 1)
        }
    }

    /// The first SIGTERM: the partial line out, then `function()`'s task cancelled.
    static func watchForStop() {
        var byte: UInt8 = 0
        while read(stopPipe.read, &byte, 1) < 0, errno == EINTR {}
        fflush(stdout)
        stopRequested = true
        running?.cancel()
    }

    /// Without a thread to hand the signal to: the handler exits, as before.
    static func exitOnSignal() {
        signal(SIGTERM) { _ in TaskMain.flushAndExit() }
    }

    static func flushAndExit() {
        if ftrylockfile(stdout) == 0 {
            fflush_unlocked(stdout)
            funlockfile(stdout)
        }
        _exit(128 + SIGTERM)
    }

    /// Writes the thrown message (at most `errorMessageLimit` bytes) to KEIJI_ERROR_FILE, when set.
    static func reportError(_ message: String) {
        guard let path = getenv("KEIJI_ERROR_FILE") else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let bytes = Array(message.utf8.prefix(errorMessageLimit))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
