/// A cron expression: five fields (minute hour day-of-month month day-of-week) or six with a leading seconds
/// field. Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and names (`jan`,
/// `mon`). Day-of-week 0 and 7 are Sunday. The day fields combine as in Vixie cron (and cronie): when neither
/// starts with `*`, a day matches if **either** does (`0 0 1,15 * mon`: the 1st, the 15th and Mondays); when one
/// does, even as a step such as `*/2`, a day must match **both** (`0 0 */2 * mon`: Mondays of odd date).
/// Evaluated on wall time in the task's zone (see ``ZonedClock`` for DST; an expression with `*` in its second,
/// minute or hour field also fires on the second pass of a repeated hour).
public struct CronExpression: Hashable, Sendable, CustomStringConvertible {
    public let source: String
    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    /// Neither day field starts with `*` (or `?`): a day matches if either field does, not both.
    let eitherDayFieldMatches: Bool
    /// The second, minute or hour field starts with `*`: the expression fires through the hours, so in a repeated
    /// hour (fall back) it fires on both passes, as Vixie cron and cronie run such jobs "normally". One of fixed
    /// times (`30 2 * * *`) fires on the first pass only (see ``ZonedClock``).
    let firesOnBothPassesOfAFold: Bool
    /// Why a step is wider than its field (`*/90` in minutes), for ``Schedule/validated()`` to refuse. Kept
    /// apart from parsing so a stored expression still decodes under stricter rules.
    let outOfRangeStep: String?
    /// A field with a signed number (`+5`, which `Int(_:)` reads as 5), for ``Schedule/validated()`` to refuse: its
    /// numbers are digits alone. Kept apart from parsing, as the step, so an expression journaled before decodes.
    let signedNumber: String?
    /// Why the expression can never fire, for ``Schedule/validated()`` to refuse (see the end of `init`).
    let neverFires: String?

    public var description: String { source }

    /// A lower bound on the time between two matches, in seconds, from the finest field with more than one value
    /// (a daylight-saving change can make an hour of wall time none: gaps of hours are counted an hour short).
    var shortestGapSeconds: Int64 {
        if let gap = Schedule.shortestCircularGap(seconds, period: 60) { return Int64(gap) }
        if let gap = Schedule.shortestCircularGap(minutes, period: 60) { return Int64(gap) * 60 }
        if let gap = Schedule.shortestCircularGap(hours, period: 24) { return max(3600, Int64(gap) * 3600 - 3600) }
        return 86_400 - 3600
    }

    public init(_ text: String) throws {
        source = text.trimmingCharacters(in: .whitespaces)
        var fields = source.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if fields.count == 5 { fields.insert("0", at: 0) }
        guard fields.count == 6 else {
            throw KeijiError(.invalidSchedule, "cron expression \"\(text)\" needs 5 fields (minute hour day month weekday) or 6 with seconds first")
        }
        func field(_ index: Int, _ name: String, _ range: ClosedRange<Int>, _ names: [String] = []) throws -> Set<Int> {
            try Self.parse(fields[index], name: name, range: range, names: names, expression: text)
        }
        outOfRangeStep = zip(fields, Self.fieldRanges).lazy.compactMap { field, spec in
            Self.stepProblem(in: field, name: spec.name, range: spec.range)
        }.first
        signedNumber = zip(fields, Self.fieldRanges).first { field, _ in field.contains("+") }.map { field, spec in
            "\(spec.name) field \"\(field)\" has a sign: its numbers are digits alone"
        }
        seconds = try field(0, "second", 0...59)
        minutes = try field(1, "minute", 0...59)
        hours = try field(2, "hour", 0...23)
        daysOfMonth = try field(3, "day of month", 1...31)
        months = try field(4, "month", 1...12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
        var dow = try field(5, "day of week", 0...7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
        if dow.remove(7) != nil { dow.insert(0) }
        daysOfWeek = dow
        // Vixie cron's DOM_STAR and DOW_STAR: set by a field's first character, so `*/2` counts as a star.
        firesOnBothPassesOfAFold = fields[0...2].contains { $0.hasPrefix("*") }
        let either = !(fields[3].hasPrefix("*") || fields[3].hasPrefix("?") || fields[5].hasPrefix("*") || fields[5].hasPrefix("?"))
        eitherDayFieldMatches = either
        let (monthSet, daySet) = (months, daysOfMonth)  // not `self` in a closure before every property is set
        let someDayExists = monthSet.contains { month in daySet.contains { $0 <= CivilTime.daysInMonth(year: 2000, month: month) } }
        guard someDayExists || fields[5] != "*" && fields[5] != "?" else {
            throw KeijiError(.invalidSchedule, "cron expression \"\(text)\" can never fire (no such day in those months)")
        }
        // With the day fields combined as Vixie cron does, a step in the weekday (`0 0 30 2 */1`) narrows the days too.
        // Refused by ``Schedule/validated()``, not here: such an expression was accepted before, and must decode.
        neverFires = someDayExists || either ? nil : "expression \"\(text)\" can never fire (no such day in those months)"
    }

    func matchesDay(_ time: CivilTime) -> Bool {
        guard months.contains(time.month) else { return false }
        let dom = daysOfMonth.contains(time.day)
        let dow = daysOfWeek.contains(time.weekday.rawValue)
        return eitherDayFieldMatches ? dom || dow : dom && dow
    }

    /// The first wall time at or after `start` that matches, searching at most ~5 years ahead.
    func nextMatch(atOrAfter start: CivilTime) -> CivilTime? {
        var t = start
        let limit = start.year + 5
        while t.year <= limit {
            if !matchesDay(t) {
                t = CivilTime(year: t.year, month: t.month, day: t.day).addingDays(1)
                continue
            }
            if let h = hours.filter({ $0 >= t.hour }).min() {
                if h > t.hour { t = CivilTime(year: t.year, month: t.month, day: t.day, hour: h) }
                if let m = minutes.filter({ $0 >= t.minute }).min() {
                    if m > t.minute { t.minute = m; t.second = 0 }
                    if let s = seconds.filter({ $0 >= t.second }).min() {
                        t.second = s
                        return t
                    }
                    t = t.addingSeconds(60 - t.second)  // next minute
                    continue
                }
                t = CivilTime(year: t.year, month: t.month, day: t.day, hour: t.hour).addingSeconds(3600)
                continue
            }
            t = CivilTime(year: t.year, month: t.month, day: t.day).addingDays(1)
        }
        return nil
    }

    static let fieldRanges: [(name: String, range: ClosedRange<Int>)] =
        [("second", 0...59), ("minute", 0...59), ("hour", 0...23), ("day of month", 1...31), ("month", 1...12), ("day of week", 0...7)]

    /// A step must be between 1 and the field's span (59 for minutes, 23 for hours, …).
    static func stepProblem(in field: String, name: String, range: ClosedRange<Int>) -> String? {
        let span = range.upperBound - range.lowerBound
        for part in field.split(separator: ",") {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count == 2, let step = Int(pieces[1]), step > span else { continue }
            return "\(name) step must be between 1 and \(span) (got \(step))"
        }
        return nil
    }

    private static func parse(_ field: String, name: String, range: ClosedRange<Int>, names: [String], expression: String) throws -> Set<Int> {
        func fail(_ why: String) -> KeijiError {
            KeijiError(.invalidSchedule, "cron expression \"\(expression)\": \(name) field \"\(field)\" \(why)")
        }
        func value(_ text: Substring) throws -> Int {
            if let index = names.firstIndex(of: text.lowercased()) { return index + (range.lowerBound == 1 ? 1 : 0) }
            guard let number = Int(text), range.contains(number) else { throw fail("has \"\(text)\" outside \(range.lowerBound)-\(range.upperBound)") }
            return number
        }
        var result: Set<Int> = []
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw fail("has an empty list item") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw fail("has more than one step") }
            var step = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1]), n > 0 else { throw fail("has an invalid step \"\(pieces[1])\"") }
                step = n
            }
            let base = pieces[0]
            var lower = range.lowerBound
            var upper = range.upperBound
            if base == "*" || base == "?" {
            } else if let dash = base.firstIndex(of: "-") {
                lower = try value(base[..<dash])
                upper = try value(base[base.index(after: dash)...])
                guard lower <= upper else { throw fail("has a backwards range") }
            } else {
                lower = try value(base)
                upper = pieces.count == 2 ? range.upperBound : lower
            }
            result.formUnion(stride(from: lower, through: upper, by: step))
        }
        return result
    }
}

extension CivilTime {
    func addingSeconds(_ seconds: Int) -> CivilTime { CivilTime(secondsSinceEpoch: secondsSinceEpoch + Int64(seconds)) }
    func addingDays(_ days: Int) -> CivilTime { addingSeconds(days * 86_400) }
}
