/// The allowed range of every number a task definition carries. They are checked in one place,
/// ``TaskDefinition/validated()``, which every path goes through: the CLI, a task binary's `--schedule`
/// output, the bus, and replay (where a refused definition puts its task in error instead of running it).
/// The bounds keep every time computed from them far inside `Int64` milliseconds, so no conversion traps.
/// docs/architecture.md ("Input ranges") lists them for people.
public enum InputRanges {
    /// `--every`: 1 second to 365 days, said as `8760h` (there is no day unit).
    public static let intervalSeconds: ClosedRange<Int64> = 1...31_536_000
    /// `--timeout`: 1 ms to 7 days.
    public static let timeoutSeconds: ClosedRange<Double> = 0.001...604_800
    /// `graceSeconds`: SIGTERM to SIGKILL, at most an hour.
    public static let graceSeconds: ClosedRange<Double> = 0...3600
    /// `--retries`.
    public static let retries: ClosedRange<Int> = 0...100
    /// `retryBackoffSeconds`: the first delay; it doubles per attempt, each delay capped at ``retryDelayCapSeconds``.
    public static let retryBackoffSeconds: ClosedRange<Double> = 0...3600
    public static let retryDelayCapSeconds: Double = 86_400
    /// `catchUpLimit`.
    public static let catchUpLimit: ClosedRange<Int> = 1...1000
    /// `jitterSeconds`.
    public static let jitterSeconds: ClosedRange<Int> = 0...86_400
    /// A record's `at`: 1970-01-01 through 9999-12-31, in milliseconds. Replay refuses records outside it.
    public static let recordMilliseconds: ClosedRange<Int64> = 0...253_402_300_799_999

    /// `text` as a number when it is ASCII digits alone, else nil: what the CLI takes for `--every`'s count and
    /// `--jitter`. `Int(_:)` alone took a sign (`+10s` every 10 s).
    public static func plainWholeNumber<Text: StringProtocol>(_ text: Text) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(text)
    }

    /// `text` as seconds when it is a plain decimal number to the millisecond (`5`, `0.25`, `1.5`), else nil: what the
    /// CLI takes for `--timeout`, `--grace` and `--retry-backoff`. `Double(_:)` alone took `0x10` (16 s), and
    /// `1e-300`, finer than the scheduler's millisecond clock, was stored and shown as given.
    public static func plainSeconds(_ text: String) -> Double? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { ("0"..."9").contains($0) } }),
            parts.count == 1 || parts[1].count <= 3
        else { return nil }
        return Double(text)
    }

    /// Throws the one-line error "`flag` must be between `low` and `high` (got `value`)" unless `value` is in
    /// `range`. NaN and infinities are never in a range.
    static func check(_ value: Double, in range: ClosedRange<Double>, flag: String, _ low: String, _ high: String) throws {
        guard value.isFinite, range.contains(value) else { throw outOfRange(flag, low, high, "\(value)") }
    }

    static func check(_ value: Int, in range: ClosedRange<Int>, flag: String, _ low: String, _ high: String) throws {
        guard range.contains(value) else { throw outOfRange(flag, low, high, "\(value)") }
    }

    static func outOfRange(_ flag: String, _ low: String, _ high: String, _ got: String) -> KeijiError {
        KeijiError(.invalidSchedule, "\(flag) must be between \(low) and \(high) (got \(got))")
    }
}

/// Time conversions that cannot trap, for values read from definitions and records.
public enum TimeArithmetic {
    /// `seconds` as whole milliseconds for a sleep or a deadline: NaN and negatives give 0, and anything past
    /// about 30,000 years is cut there (a validated definition never comes near either end).
    public static func milliseconds(fromSeconds seconds: Double) -> Int64 {
        guard seconds > 0 else { return 0 }
        let ms = seconds * 1000
        return ms < ceilingMilliseconds ? Int64(ms) : Int64(ceilingMilliseconds)
    }

    static let ceilingMilliseconds = 1e15

    /// `a × b`, saturating at the ends of `Int64` instead of trapping.
    public static func product(_ a: Int64, _ b: Int64) -> Int64 {
        let (result, overflow) = a.multipliedReportingOverflow(by: b)
        guard overflow else { return result }
        return (a < 0) == (b < 0) ? .max : .min
    }

    /// `a + b`, saturating at the ends of `Int64` instead of trapping.
    public static func sum(_ a: Int64, _ b: Int64) -> Int64 {
        let (result, overflow) = a.addingReportingOverflow(b)
        guard overflow else { return result }
        return b > 0 ? .max : .min
    }
}
