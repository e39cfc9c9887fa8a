/// How a scheduler that stopped because its journal failed says so: in the line its log ends with, where
/// `keiji system --status` finds it to say why the scheduler is down, and in the answer to a command. Written by the
/// scheduler and read by the CLI, so the words live here once.
public enum JournalFailureStop {
    static let stopPrefix = "scheduler stopped after its journal failed: "

    /// The log's last line of such a stop (`scheduler stopped cleanly` after a graceful one).
    public static func logLine(_ reason: String) -> String { stopPrefix + reason }

    /// What a command is answered once the journal failed: the failure, and what to do.
    public static func refusal(_ reason: String) -> String {
        "\(reason); the scheduler has stopped (fix that, then run keiji system --start)"
    }

    /// From a scheduler log's last lines (oldest first, each `<time> <message>`), why the scheduler stopped, when its
    /// last start or stop there is such a stop: "stopped <time> after its journal failed: <reason>"; nil otherwise.
    public static func lastStop(in lines: [String]) -> String? {
        for line in lines.reversed() {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let message = parts[1]
            if message.hasPrefix(stopPrefix) {
                return "stopped \(parts[0]) after its journal failed: \(message.dropFirst(stopPrefix.count))"
            }
            if message.hasPrefix("scheduler stopped") || message.hasPrefix("scheduler started") { return nil }
        }
        return nil
    }
}
