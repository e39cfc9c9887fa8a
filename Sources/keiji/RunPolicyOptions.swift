import ArgumentParser
import KeijiCore

/// The run-policy flags of `keiji task --create --command …` and `keiji task --build`. A flag given here wins
/// over the task program's own policies and over the task's previous definition (see ``RunPolicyOverride``).
struct RunPolicyOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Time zone of the task's schedule, e.g. Europe/Paris (`default`: the settings' TIME_ZONE).") var timeZone: String?
    @Option(parsing: .unconditional, help: "Delay each firing by a stable pseudo-random 0…N seconds (0–86400, shorter than the time between two slots).", transform: wholeSeconds) var jitter: Int?
    @Option(parsing: .unconditional, help: "Stop a run after this many seconds, 0.001–604800 (1 ms to 7 days), or `none`: no limit.") var timeout: String?
    @Option(parsing: .unconditional, help: "Seconds between SIGTERM and SIGKILL when a run is stopped (0–3600).", transform: seconds) var grace: Double?
    @Option(parsing: .unconditional, help: "Retries after a failed run (0–100).") var retries: Int?
    @Option(parsing: .unconditional, help: "Seconds before the first retry (0–3600); doubled for each further one.", transform: seconds)
    var retryBackoff: Double?
    @Option(parsing: .unconditional, help: "A slot that comes while a run is still going: skip or allow.") var overlap: OverlapPolicy?
    @Option(parsing: .unconditional, help: "Slots missed while the scheduler was down: skip, once or all.") var catchUp: CatchUpPolicy?
    @Option(parsing: .unconditional, help: "With --catch-up all: at most this many runs (1–1000).") var catchUpLimit: Int?
    @Option(parsing: .unconditional, help: "Re-run a run that a scheduler crash interrupted: true or false.") var rerunInterrupted: Bool?
    @Option(parsing: .unconditional, help: "Keep scheduling after a failed run instead of waiting for --resolve: true or false.") var continueOnError: Bool?

    /// The policy flags given, in the help's order.
    var givenFlags: [String] {
        let flags: [(String, Bool)] = [
            ("--time-zone", timeZone != nil), ("--jitter", jitter != nil), ("--timeout", timeout != nil), ("--grace", grace != nil),
            ("--retries", retries != nil), ("--retry-backoff", retryBackoff != nil), ("--overlap", overlap != nil), ("--catch-up", catchUp != nil),
            ("--catch-up-limit", catchUpLimit != nil), ("--rerun-interrupted", rerunInterrupted != nil), ("--continue-on-error", continueOnError != nil),
        ]
        return flags.filter { $0.1 }.map { $0.0 }
    }

    /// The flags as an override, each value checked against its range (``TaskCommand/validate()`` calls it first,
    /// so a refusal is a usage error).
    func override() throws -> RunPolicyOverride {
        var timeoutSeconds: Double?
        if let timeout {
            if timeout == "none" {
                timeoutSeconds = 0
            } else if let seconds = InputRanges.plainSeconds(timeout) {
                // 0 means "none" inside an override, so the range is checked here, with Core's message.
                var probe = RunPolicy()
                probe.timeoutSeconds = seconds
                _ = try probe.validated()
                timeoutSeconds = seconds
            } else {
                throw CLIError("--timeout takes a plain number of seconds, at most 3 decimals, between 1 ms and 7 days (604800 s), or none (got \(timeout))")
            }
        }
        return try RunPolicyOverride(
            timeZone: timeZone.map { $0 == "default" ? "" : $0 }, jitterSeconds: jitter, timeoutSeconds: timeoutSeconds,
            graceSeconds: grace, overlap: overlap, retries: retries, retryBackoffSeconds: retryBackoff, catchUp: catchUp,
            catchUpLimit: catchUpLimit, rerunInterrupted: rerunInterrupted, continueOnError: continueOnError).validated()
    }
}

/// `--grace` and `--retry-backoff`: a plain decimal number of seconds, at most 3 decimals (``InputRanges/plainSeconds(_:)``).
private func seconds(_ text: String) throws -> Double {
    guard let seconds = InputRanges.plainSeconds(text) else { throw CLIError("give seconds as a plain number, at most 3 decimals, e.g. 5 or 0.25") }
    return seconds
}

/// `--jitter`: whole seconds as digits alone (``InputRanges/plainWholeNumber(_:)``); `Int(_:)` took `+30`.
private func wholeSeconds(_ text: String) throws -> Int {
    guard let seconds = InputRanges.plainWholeNumber(text) else { throw CLIError("give whole seconds as a plain number, e.g. 30") }
    return seconds
}

extension OverlapPolicy: ExpressibleByArgument {}
extension CatchUpPolicy: ExpressibleByArgument {}
