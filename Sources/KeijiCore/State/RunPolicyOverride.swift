/// What one source says about how a task runs: the CLI's flags, or the task program's `--schedule` output
/// (its `"policy"` object). A `nil` field says nothing, so the next source down decides.
///
/// The precedence, highest first: a CLI flag, the SDK (the task program), the task's previous definition,
/// the default. A rebuild therefore keeps every policy nobody restated; to drop one, say so explicitly
/// (`--timeout none`, `--time-zone default`, or a new value from the SDK or a flag).
public struct RunPolicyOverride: Codable, Sendable, Equatable {
    /// The zone the schedule is read in. `""` clears it, back to the settings' `TIME_ZONE`.
    public var timeZone: String?
    public var jitterSeconds: Int?
    /// `0` clears it: no time limit.
    public var timeoutSeconds: Double?
    public var graceSeconds: Double?
    public var overlap: OverlapPolicy?
    public var retries: Int?
    public var retryBackoffSeconds: Double?
    public var catchUp: CatchUpPolicy?
    public var catchUpLimit: Int?
    public var rerunInterrupted: Bool?
    public var continueOnError: Bool?

    public init(timeZone: String? = nil, jitterSeconds: Int? = nil, timeoutSeconds: Double? = nil, graceSeconds: Double? = nil,
                overlap: OverlapPolicy? = nil, retries: Int? = nil, retryBackoffSeconds: Double? = nil, catchUp: CatchUpPolicy? = nil,
                catchUpLimit: Int? = nil, rerunInterrupted: Bool? = nil, continueOnError: Bool? = nil) {
        self.timeZone = timeZone
        self.jitterSeconds = jitterSeconds
        self.timeoutSeconds = timeoutSeconds
        self.graceSeconds = graceSeconds
        self.overlap = overlap
        self.retries = retries
        self.retryBackoffSeconds = retryBackoffSeconds
        self.catchUp = catchUp
        self.catchUpLimit = catchUpLimit
        self.rerunInterrupted = rerunInterrupted
        self.continueOnError = continueOnError
    }

    /// Writes the fields this source sets over `spec` and `policy`.
    public func apply(to spec: inout ScheduleSpec, _ policy: inout RunPolicy) {
        if let timeZone { spec.timeZone = timeZone.isEmpty ? nil : timeZone }
        if let jitterSeconds { spec.jitterSeconds = jitterSeconds }
        if let timeoutSeconds { policy.timeoutSeconds = timeoutSeconds == 0 ? nil : timeoutSeconds }
        if let graceSeconds { policy.graceSeconds = graceSeconds }
        if let overlap { policy.overlap = overlap }
        if let retries { policy.retries = retries }
        if let retryBackoffSeconds { policy.retryBackoffSeconds = retryBackoffSeconds }
        if let catchUp { policy.catchUp = catchUp }
        if let catchUpLimit { policy.catchUpLimit = catchUpLimit }
        if let rerunInterrupted { policy.rerunInterrupted = rerunInterrupted }
        if let continueOnError { policy.continueOnError = continueOnError }
    }

    /// Each value given, checked against its own range, and the zone against the system's: what can be refused
    /// before the schedule it goes with is known (``resolve(schedule:previous:sdk:cli:)`` adds the jitter's
    /// bound by the time between two slots).
    public func validated() throws -> RunPolicyOverride {
        var spec = ScheduleSpec(Schedule.every(1, .hours))  // a sink for the zone and the jitter, checked alone below
        var policy = RunPolicy()
        apply(to: &spec, &policy)
        _ = try policy.validated()
        if let zone = spec.timeZone { try ScheduleSpec.checkTimeZone(zone) }
        try ScheduleSpec.checkJitterRange(spec.jitterSeconds)
        return self
    }

    /// Refuses a `--catch-up-limit` given where the task's catch-up, once resolved, is not `all`: it was saved and
    /// did nothing. Checked on the merge, as a program's `.catchUp(.all)` gives the limit its effect.
    public func checkCatchUpLimit(with catchUp: CatchUpPolicy) throws {
        guard let catchUpLimit, catchUp != .all else { return }
        throw KeijiError(.invalidSchedule, "--catch-up-limit \(catchUpLimit) has no effect with catch-up \(catchUp.rawValue): "
                         + "it bounds --catch-up all (give that too, or leave the limit out)")
    }

    /// The schedule spec and policy of a (re)built task: `schedule` from the program, its zone, jitter and
    /// policy from `previous` (when the task exists), then the SDK's override, then the CLI's; validated.
    public static func resolve(schedule: Schedule, previous: (spec: ScheduleSpec, policy: RunPolicy)?,
                               sdk: RunPolicyOverride, cli: RunPolicyOverride) throws -> (spec: ScheduleSpec, policy: RunPolicy) {
        var spec = ScheduleSpec(schedule, timeZone: previous?.spec.timeZone, jitterSeconds: previous?.spec.jitterSeconds ?? 0)
        var policy = previous?.policy ?? RunPolicy()
        sdk.apply(to: &spec, &policy)
        cli.apply(to: &spec, &policy)
        return (try spec.validated(), try policy.validated())
    }
}
