import KeijiCore

/// A run's outcome in a word or three, as `--list` (LAST RESULT) and `--runs` (RESULT) print it:
/// `succeeded`, `failed (exit 3)`, `killed (signal 9)`, `timed out`, `stopped`, `stopped (never began)`,
/// `missed (overlap)`, ….
enum RunResultText {
    /// `outcome` as the view's `runs.Outcome` holds it (a `RunOutcome`, or `missed(reason)`); nil: `-` (never ran).
    /// `message` is the view's `runs.Message`: a run journaled as started that ended before its process began
    /// (``RunEnd/neverBegan(message:)``) is `stopped (never began)`.
    static func text(outcome: String?, exitCode: String?, signal: String?, message: String?) -> String {
        let text = words(outcome: outcome, exitCode: exitCode, signal: signal)
        return RunEnd.neverBegan(message: message) ? text + " (never began)" : text
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
