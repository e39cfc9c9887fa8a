import Foundation

/// When a task runs. The seed's two forms (`every(n).seconds/minutes/hours`, `on(day).at(time)`) plus cron
/// expressions, several days, and one-shot runs. Options that apply to every form (zone, jitter) live in
/// ``ScheduleSpec``.
public enum Schedule: Hashable, Sendable {
    public enum Unit: String, Codable, Sendable, CaseIterable {
        case seconds, minutes, hours
        var seconds: Int64 { switch self { case .seconds: 1; case .minutes: 60; case .hours: 3600 } }
    }

    /// Every `count` units, counted from the task's anchor (when it was saved or re-enabled).
    case every(Int, Unit)
    /// On these days at this wall time.
    case weekly(days: [Weekday], at: TimeOfDay)
    /// Indirect: a parsed expression (88 bytes inline) would otherwise size every schedule, and so every task's
    /// state, for the few tasks that use cron; boxed, it costs a pointer and one allocation for those tasks only.
    indirect case cron(CronExpression)
    /// Once, at this instant (seconds since the Unix epoch).
    case once(at: Int64)

    /// The seed's `Type` column: `HMS`, `DayTime`, plus `Cron` and `Once`.
    public var typeName: String {
        switch self {
        case .every: "HMS"
        case .weekly: "DayTime"
        case .cron: "Cron"
        case .once: "Once"
        }
    }

    /// The seed's `Schedule` display string, in a stable key order: `units:seconds,interval:10`,
    /// `day:Friday,time:22:00`, `cron:*/5 * * * *`, `once:2026-12-01T09:00:00Z`.
    public var displayString: String {
        switch self {
        case .every(let n, let unit): "units:\(unit.rawValue),interval:\(n)"
        case .weekly(let days, let time): "day:\(days.map(\.description).joined(separator: "|")),time:\(time)"
        case .cron(let expression): "cron:\(expression.source)"
        case .once(let at): "once:\(ISO8601.string(fromSeconds: at))"
        }
    }

    /// The least time between two slots, in seconds (a lower bound where the wall clock decides: a day can be an
    /// hour short at a daylight-saving change), or nil for a one-shot. What a jitter must stay below.
    public var shortestGapSeconds: Int64? {
        switch self {
        case .every: return intervalSeconds
        case .weekly(let days, _):
            let gap = Self.shortestCircularGap(Set(days.map(\.rawValue)), period: 7) ?? 7
            return Int64(gap) * 86_400 - 3600
        case .cron(let expression): return expression.shortestGapSeconds
        case .once: return nil
        }
    }

    /// The least distance between two of `values` on a circle of `period` (nil for fewer than two).
    static func shortestCircularGap(_ values: Set<Int>, period: Int) -> Int? {
        guard values.count > 1 else { return nil }
        let sorted = values.sorted()
        let wrap = sorted[0] + period - sorted[sorted.count - 1]
        return zip(sorted, sorted.dropFirst()).map { $1 - $0 }.reduce(wrap, min)
    }

    /// The interval of an `every` schedule in seconds, or nil when it does not fit in `Int64`.
    public var intervalSeconds: Int64? {
        guard case .every(let n, let unit) = self else { return nil }
        let (seconds, overflow) = Int64(n).multipliedReportingOverflow(by: unit.seconds)
        return overflow ? nil : seconds
    }

    /// Checks the ranges in ``InputRanges``: an interval of 1 s to 365 days, 1 to 7 distinct weekdays, cron
    /// steps no wider than their field and numbers without a sign.
    public func validated() throws -> Schedule {
        switch self {
        case .every(let n, let unit):
            guard let seconds = intervalSeconds, InputRanges.intervalSeconds.contains(seconds) else {
                throw InputRanges.outOfRange("--every", "1 s", "365 days", "\(n)\(unit.rawValue.prefix(1))")
            }
        case .weekly(let days, _):
            guard !days.isEmpty else { throw KeijiError(.invalidSchedule, "--on needs at least one day") }
            if let twice = days.first(where: { day in days.filter { $0 == day }.count > 1 }) {
                throw KeijiError(.invalidSchedule, "--on names \(twice) twice (give each day once, 1 to 7 days)")
            }
        case .cron(let expression):
            if let problem = expression.outOfRangeStep { throw KeijiError(.invalidSchedule, "--cron " + problem) }
            if let problem = expression.signedNumber { throw KeijiError(.invalidSchedule, "--cron " + problem) }
            if let problem = expression.neverFires { throw KeijiError(.invalidSchedule, "--cron " + problem) }
        case .once: break
        }
        return self
    }
}

/// A schedule with the options every form shares. This is what a task definition stores and what a task
/// binary prints for `--schedule`.
public struct ScheduleSpec: Hashable, Sendable, Codable {
    public var schedule: Schedule
    /// Overrides `TIME_ZONE` for this task.
    public var timeZone: String?
    /// Each firing is delayed by a stable pseudo-random 0…jitter seconds (spreads load across many tasks).
    public var jitterSeconds: Int

    public init(_ schedule: Schedule, timeZone: String? = nil, jitterSeconds: Int = 0) {
        self.schedule = schedule
        self.timeZone = timeZone
        self.jitterSeconds = jitterSeconds
    }

    public func validated() throws -> ScheduleSpec {
        _ = try schedule.validated()
        if let timeZone { try Self.checkTimeZone(timeZone) }
        try Self.checkJitterRange(jitterSeconds)
        // A jitter as long as the time between two slots lets a slot's firing come after the next one's: the timer
        // then took each late slot for a stall, recorded slots missed (downtime) and ran a fraction of them.
        if jitterSeconds > 0, let gap = schedule.shortestGapSeconds, Int64(jitterSeconds) >= gap {
            throw KeijiError(.invalidSchedule, "--jitter (\(jitterSeconds) s) must be shorter than the time between two slots of the schedule "
                             + "(\(gap) s at the least): a longer one would fire slots out of order")
        }
        return self
    }

    static func checkTimeZone(_ identifier: String) throws {
        guard TimeZone(identifier: identifier) != nil else { throw KeijiError(.invalidSchedule, "unknown time zone \"\(identifier)\"") }
    }

    static func checkJitterRange(_ seconds: Int) throws {
        try InputRanges.check(seconds, in: InputRanges.jitterSeconds, flag: "--jitter", "0", "86400 seconds")
    }

    // JSON: {"every":10,"unit":"seconds"} | {"days":["Friday"],"at":"22:00"} | {"cron":"* * * * *"} | {"once":"…Z"}
    private enum Keys: String, CodingKey { case every, unit, days, at, cron, once, timeZone, jitterSeconds }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone)
        jitterSeconds = try c.decodeIfPresent(Int.self, forKey: .jitterSeconds) ?? 0
        do {
            if let n = try c.decodeIfPresent(Int.self, forKey: .every) {
                schedule = .every(n, try c.decodeIfPresent(Schedule.Unit.self, forKey: .unit) ?? .seconds)
            } else if let days = try c.decodeIfPresent([String].self, forKey: .days) {
                schedule = .weekly(days: try days.map(Weekday.init(parsing:)), at: try TimeOfDay(parsing: try c.decode(String.self, forKey: .at)))
            } else if let cron = try c.decodeIfPresent(String.self, forKey: .cron) {
                schedule = .cron(try CronExpression(cron))
            } else if let once = try c.decodeIfPresent(String.self, forKey: .once) {
                guard let seconds = ISO8601.seconds(from: once) else { throw KeijiError(.invalidSchedule, "invalid date \"\(once)\"") }
                schedule = .once(at: seconds)
            } else {
                throw KeijiError(.invalidSchedule, "a schedule needs one of every, days/at, cron or once")
            }
            // Ranges are checked by `validated()`, not here: a checkpoint must decode a definition that
            // today's rules refuse, so replay can put its task in error instead of failing to start.
        } catch let error as KeijiError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch schedule {
        case .every(let n, let unit):
            try c.encode(n, forKey: .every)
            try c.encode(unit, forKey: .unit)
        case .weekly(let days, let time):
            try c.encode(days.map(\.description), forKey: .days)
            try c.encode(time.description, forKey: .at)
        case .cron(let expression): try c.encode(expression.source, forKey: .cron)
        case .once(let at): try c.encode(ISO8601.string(fromSeconds: at), forKey: .once)
        }
        try c.encodeIfPresent(timeZone, forKey: .timeZone)
        if jitterSeconds != 0 { try c.encode(jitterSeconds, forKey: .jitterSeconds) }
    }
}

/// RFC 3339 UTC timestamps with whole seconds (`2026-11-23T04:00:00Z`), without Foundation's formatters.
public enum ISO8601 {
    public static func string(fromSeconds seconds: Int64) -> String { CivilTime(secondsSinceEpoch: seconds).text(milliseconds: nil, zulu: true) }

    public static func string(fromMilliseconds ms: Int64) -> String {
        let seconds = floorDivide(ms, 1000)
        return CivilTime(secondsSinceEpoch: seconds).text(milliseconds: Int(ms - seconds * 1000), zulu: true)
    }

    /// Milliseconds since the epoch of a time as ``string(fromMilliseconds:)`` writes it (`…T06:07:06.448Z`), or
    /// of whole seconds (`…T06:07:06Z`): what the query view holds, read back by `task --list` and `--runs`.
    public static func milliseconds(from text: String) -> Int64? {
        parse(text).map { $0.seconds * 1000 + $0.milliseconds }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS` with `Z` or a `±HH:MM` offset (a missing zone means UTC). Each field is digits
    /// only (no sign).
    public static func seconds(from text: String) -> Int64? { parse(text)?.seconds }

    /// Both readings in one pass, byte by byte: `keiji task --list` reads two times a task (Foundation's `padding`
    /// and Unicode-aware `Character` tests were most of it at 10,000 tasks). `milliseconds` is the fraction's first
    /// three digits (`.4` is 400).
    private static func parse(_ text: String) -> (seconds: Int64, milliseconds: Int64)? {
        let chars = Array(text.utf8)
        guard chars.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in chars[range] {
                guard let digit = decimalDigit(byte) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard chars[4] == 45, chars[7] == 45, chars[10] == 84 || chars[10] == 32, chars[13] == 58, chars[16] == 58,
            let y = number(0..<4), let mo = number(5..<7), let d = number(8..<10), let h = number(11..<13),
            let mi = number(14..<16), let s = number(17..<19), (1...12).contains(mo),
            (1...CivilTime.daysInMonth(year: y, month: mo)).contains(d), h < 24, mi < 60, s < 60
        else { return nil }
        var offset: Int64 = 0
        var fraction: Int64 = 0
        var rest = chars[19...]
        if rest.first == 46 {
            // One dot and at least one digit; digits past the third are read and dropped.
            rest = rest.dropFirst()
            let fractionEnd = rest.firstIndex(where: { decimalDigit($0) == nil }) ?? rest.endIndex
            guard fractionEnd > rest.startIndex else { return nil }
            let kept = rest[..<fractionEnd].prefix(3)
            for byte in kept { fraction = fraction * 10 + Int64(byte - 48) }
            for _ in kept.count..<3 { fraction *= 10 }
            rest = rest[fractionEnd...]
        }
        if rest.first == 90 { rest = rest.dropFirst() } else if let sign = rest.first, sign == 43 || sign == 45, rest.count == 6 {
            let at = rest.startIndex
            guard chars[at + 3] == 58, let oh = number((at + 1)..<(at + 3)), let om = number((at + 4)..<(at + 6)) else { return nil }
            offset = Int64(oh * 3600 + om * 60) * (sign == 43 ? 1 : -1)
            rest = []
        }
        guard rest.isEmpty else { return nil }
        return (CivilTime(year: y, month: mo, day: d, hour: h, minute: mi, second: s).secondsSinceEpoch - offset, fraction)
    }

    private static func decimalDigit(_ byte: UInt8) -> Int? { (48...57).contains(byte) ? Int(byte - 48) : nil }
}
