import Foundation

/// Everything the scheduler needs to run a task. Journaled whole in `task.saved`, so a rebuild or an edit is
/// one atomic record.
public struct TaskDefinition: Codable, Sendable, Equatable {
    public var name: TaskName
    public var description: String
    public var action: TaskAction
    public var schedule: ScheduleSpec
    public var policy: RunPolicy
    /// The task's folder: its working directory, and where its `.env` is read from at each run.
    public var directory: String

    public init(name: TaskName, description: String, action: TaskAction, schedule: ScheduleSpec,
                policy: RunPolicy = RunPolicy(), directory: String) {
        self.name = name
        self.description = description
        self.action = action
        self.schedule = schedule
        self.policy = policy
        self.directory = directory
    }

    /// The one range check of a definition (see ``InputRanges``): the CLI, `--schedule` output, the bus
    /// and replay all go through it. Throws a one-line error naming the flag and its range.
    public func validated() throws -> TaskDefinition {
        _ = try schedule.validated()
        _ = try policy.validated()
        if case .command(let command) = action, command.allSatisfy(\.isWhitespace) {
            throw KeijiError(.invalidSchedule, "--command must not be empty")  // `/bin/sh -c "  "` runs nothing, and succeeds
        }
        let command: String? = if case .command(let command) = action { command } else { nil }
        try RunSize.check(description: description, command: command)
        return self
    }

    /// The seed's `Executable` column: what a run execs. The binary; a command's own words when it is exec'd
    /// directly (``CommandWords``), else `/bin/sh -c <command>`.
    public var executableDescription: String {
        switch action {
        case .binary(let path): path
        case .command(let command): CommandWords.plainWords(command).map { $0.joined(separator: " ") } ?? "/bin/sh -c " + command
        }
    }
}

/// What a run executes.
public enum TaskAction: Codable, Sendable, Equatable {
    /// A built task binary, run as `<path> --run`.
    case binary(path: String)
    /// A command line: exec'd directly when it is plain words, else run as `/bin/sh -c <command>` (``CommandWords``). The command is passed as one argv element, never
    /// interpolated into another string, so names and descriptions cannot inject shell syntax.
    case command(String)
}

/// How runs of a task behave.
public struct RunPolicy: Codable, Sendable, Equatable {
    /// SIGTERM to the run's process group after this long, SIGKILL `graceSeconds` later. `nil`: no limit.
    public var timeoutSeconds: Double?
    public var graceSeconds: Double = 5
    public var overlap: OverlapPolicy = .skip
    /// Further attempts after a failure, `retryBackoffSeconds × 2^(attempt-1)` apart (at most a day; see ``retryDelaySeconds(afterAttempt:)``).
    public var retries: Int = 0
    public var retryBackoffSeconds: Double = 1
    /// What to do with slots that passed while the scheduler was down.
    public var catchUp: CatchUpPolicy = .once
    /// Upper bound of runs for `catchUp == .all`.
    public var catchUpLimit: Int = 10
    /// Re-run a run that a crash interrupted.
    public var rerunInterrupted = true
    /// Keep scheduling after a failure instead of waiting for `keiji task --resolve` (the seed's behaviour).
    public var continueOnError = false

    public init() {}

    private enum Keys: String, CodingKey {
        case timeoutSeconds, graceSeconds, overlap, retries, retryBackoffSeconds, catchUp, catchUpLimit, rerunInterrupted, continueOnError
    }

    // Every field is optional in JSON, so old records and hand-written specs decode with the defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let d = RunPolicy()
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds)
        graceSeconds = try c.decodeIfPresent(Double.self, forKey: .graceSeconds) ?? d.graceSeconds
        overlap = try c.decodeIfPresent(OverlapPolicy.self, forKey: .overlap) ?? d.overlap
        retries = try c.decodeIfPresent(Int.self, forKey: .retries) ?? d.retries
        retryBackoffSeconds = try c.decodeIfPresent(Double.self, forKey: .retryBackoffSeconds) ?? d.retryBackoffSeconds
        catchUp = try c.decodeIfPresent(CatchUpPolicy.self, forKey: .catchUp) ?? d.catchUp
        catchUpLimit = try c.decodeIfPresent(Int.self, forKey: .catchUpLimit) ?? d.catchUpLimit
        rerunInterrupted = try c.decodeIfPresent(Bool.self, forKey: .rerunInterrupted) ?? d.rerunInterrupted
        continueOnError = try c.decodeIfPresent(Bool.self, forKey: .continueOnError) ?? d.continueOnError
    }

    public func validated() throws -> RunPolicy {
        if let timeoutSeconds {
            try InputRanges.check(timeoutSeconds, in: InputRanges.timeoutSeconds, flag: "--timeout", "1 ms", "7 days (604800 s)")
        }
        try InputRanges.check(graceSeconds, in: InputRanges.graceSeconds, flag: "--grace", "0", "3600 seconds")
        try InputRanges.check(retries, in: InputRanges.retries, flag: "--retries", "0", "100")
        try InputRanges.check(retryBackoffSeconds, in: InputRanges.retryBackoffSeconds, flag: "--retry-backoff", "0", "3600 seconds")
        try InputRanges.check(catchUpLimit, in: InputRanges.catchUpLimit, flag: "--catch-up-limit", "1", "1000")
        return self
    }

    /// The wait before attempt `attempt + 1`: the backoff doubled per attempt so far, at most a day.
    public func retryDelaySeconds(afterAttempt attempt: Int) -> Double {
        let delay = retryBackoffSeconds * pow(2, Double(max(0, attempt - 1)))
        return delay.isFinite ? min(delay, InputRanges.retryDelayCapSeconds) : InputRanges.retryDelayCapSeconds
    }
}

public enum OverlapPolicy: String, Codable, Sendable, CaseIterable {
    /// A slot that comes while the previous run is still going is skipped (and recorded as missed).
    case skip
    /// Runs may overlap.
    case allow
}

public enum CatchUpPolicy: String, Codable, Sendable, CaseIterable {
    /// Slots missed while the scheduler was down are recorded as missed, not run.
    case skip
    /// One run for the most recent missed slot (the default; what anacron and systemd's Persistent= do).
    case once
    /// A run for every missed slot, up to `catchUpLimit`.
    case all
}
