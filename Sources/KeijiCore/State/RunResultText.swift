/// A run's outcome in a word or three, as `keiji task --list` (LAST RESULT), `keiji task --runs` (RESULT) and the
/// dashboard print it: `succeeded`, `failed (exit 3)`, `killed (signal 9)`, `timed out`, `stopped`,
/// `stopped (never began)`, `missed (overlap)`, ….
public enum RunResultText {
    /// `outcome` as the view's `runs.Outcome` and ``RunSummary/outcome`` hold it (a `RunOutcome`, or
    /// `missed(reason)`); nil: `-` (never ran). `message` is the run's message: a run journaled as started that
    /// ended before its process began (``RunEnd/neverBegan(message:)``) is `stopped (never began)`.
    public static func text(outcome: String?, exitCode: String?, signal: String?, message: String?) -> String {
        let text = words(outcome: outcome, exitCode: exitCode, signal: signal)
        if RunEnd.endLost(message: message) { return text + " (end lost)" }
        return RunEnd.neverBegan(message: message) ? text + " (never began)" : text
    }

    /// `outcome` alone (`timed out`, `could not start`, …), for a line that gives the exit status in its message, as
    /// the end line of a run in its task's log does.
    public static func text(_ outcome: RunOutcome) -> String {
        words(outcome: outcome.rawValue, exitCode: nil, signal: nil)
    }

    private static func words(outcome: String?, exitCode: String?, signal: String?) -> String {
        guard let outcome else { return "-" }
        switch outcome {
        case "succeeded": return "succeeded"
        case "failed":
            if let signal { return "killed (signal \(signal))" }
            return exitCode.map { "failed (exit \($0))" } ?? "failed"
        case "timedOut": return "timed out"
        case "spawnFailed": return "could not start"
        default:
            // stopped, interrupted, missed(overlap|downtime|error): the word, and what the process said if anything.
            let word = outcome.hasPrefix("missed(") ? "missed (" + outcome.dropFirst("missed(".count) : outcome
            if let signal { return "\(word) (signal \(signal))" }
            return exitCode.map { "\(word) (exit \($0))" } ?? word
        }
    }
}

extension RunSummary {
    /// It ended before its process began (``RunEnd/neverBegan(message:)``): its ``startedAt`` is when its
    /// `run.started` was journaled, not when anything ran.
    public var neverBegan: Bool { RunEnd.neverBegan(message: message) }
    /// When its process began; nil for a missed slot and for a run that never began.
    public var began: Int64? { neverBegan ? nil : startedAt }
    /// How long it ran (``RunEnd/durationMs(start:end:message:measured:)``).
    public var durationMs: Int64? { RunEnd.durationMs(start: startedAt, end: finishedAt, message: message, measured: measuredMs) }
    /// From its slot to when its process began; nil when it never did.
    public var beganLatenessMs: Int64? { neverBegan ? nil : latenessMs }
    /// ``RunResultText/text(outcome:exitCode:signal:message:)`` of this run.
    public var resultText: String {
        RunResultText.text(outcome: outcome, exitCode: exitCode.map(String.init), signal: signal.map(String.init), message: message)
    }
}
