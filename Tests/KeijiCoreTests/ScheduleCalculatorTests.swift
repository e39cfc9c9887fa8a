import Foundation
import Testing

@testable import KeijiCore

struct ScheduleCalculatorTests {
    static let utc = TimeZone(identifier: "UTC")!

    func at(_ iso: String) -> Int64 { ISO8601.seconds(from: iso)! }

    func calculator(_ schedule: Schedule, zone: String = "UTC", anchor: String = "2026-11-23T00:00:00Z") -> ScheduleCalculator {
        ScheduleCalculator(spec: ScheduleSpec(schedule), defaultTimeZone: TimeZone(identifier: zone)!, anchor: at(anchor))
    }

    func firings(_ calculator: ScheduleCalculator, after: Int64, count: Int) -> [String] {
        var out: [String] = []
        var cursor = after
        while out.count < count, let next = calculator.nextSlot(after: cursor) {
            out.append(ISO8601.string(fromSeconds: next))
            cursor = next
        }
        return out
    }

    /// The view's times, written digit by digit, against the C library's own civil breakdown (`gmtime_r`) over
    /// the whole range a journal holds (1970…9999) and its edges, with milliseconds including 0 and 999.
    @Test func isoTimesMatchTheCLibrary() {
        var generator = SystemRandomNumberGenerator()
        let last: Int64 = 253_402_300_799  // 9999-12-31T23:59:59Z
        let samples: [Int64] = [0, 1, 59, 86_399, 86_400, 951_782_400, 1_795_000_000, last] + (0..<2000).map { _ in Int64.random(in: 0...last, using: &generator) }
        for seconds in samples {
            var time = time_t(seconds), parts = tm()
            gmtime_r(&time, &parts)
            let expected = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                                  parts.tm_hour, parts.tm_min, parts.tm_sec)
            #expect(ISO8601.string(fromSeconds: seconds) == expected + "Z")
            let millis = seconds == last ? 999 : Int64.random(in: 0...999, using: &generator)
            #expect(ISO8601.string(fromMilliseconds: seconds * 1000 + millis) == expected + String(format: ".%03dZ", Int(millis)))
            #expect(ISO8601.seconds(from: expected + "Z") == seconds)
            #expect(ISO8601.milliseconds(from: ISO8601.string(fromMilliseconds: seconds * 1000 + millis)) == seconds * 1000 + millis)
        }
        #expect(ISO8601.string(fromMilliseconds: -1) == "1969-12-31T23:59:59.999Z")
    }

    @Test func intervalsCountFromTheAnchor() {
        let every10 = calculator(.every(10, .seconds))
        #expect(firings(every10, after: at("2026-11-23T00:00:00Z"), count: 3)
            == ["2026-11-23T00:00:10Z", "2026-11-23T00:00:20Z", "2026-11-23T00:00:30Z"])
        #expect(every10.nextSlot(after: at("2026-11-23T00:00:15Z")) == at("2026-11-23T00:00:20Z"))
        #expect(every10.nextSlot(after: at("2026-11-22T00:00:00Z")) == at("2026-11-23T00:00:10Z"), "before the anchor: first slot")
        #expect(calculator(.every(2, .hours)).nextSlot(after: at("2026-11-23T03:00:00Z")) == at("2026-11-23T04:00:00Z"))
        #expect(calculator(.every(5, .minutes)).nextSlot(after: at("2026-11-23T00:04:59Z")) == at("2026-11-23T00:05:00Z"))
    }

    @Test func weeklySchedulesFollowTheSeedRules() {
        // 2026-11-23 is a Monday.
        let friday = calculator(.weekly(days: [.friday], at: try! TimeOfDay(parsing: "10:00PM")))
        #expect(friday.nextSlot(after: at("2026-11-23T12:00:00Z")) == at("2026-11-27T22:00:00Z"))
        let monday = calculator(.weekly(days: [.monday], at: try! TimeOfDay(parsing: "09:00")))
        #expect(monday.nextSlot(after: at("2026-11-23T08:59:59Z")) == at("2026-11-23T09:00:00Z"), "same day before: today")
        #expect(monday.nextSlot(after: at("2026-11-23T09:00:00Z")) == at("2026-11-30T09:00:00Z"), "same day at or after: next week")
        let several = calculator(.weekly(days: [.monday, .wednesday, .friday], at: try! TimeOfDay(parsing: "18:30")))
        #expect(firings(several, after: at("2026-11-23T19:00:00Z"), count: 3)
            == ["2026-11-25T18:30:00Z", "2026-11-27T18:30:00Z", "2026-11-30T18:30:00Z"])
    }

    @Test func cronExpressions() throws {
        #expect(firings(calculator(.cron(try CronExpression("*/15 * * * *"))), after: at("2026-11-23T10:07:00Z"), count: 3)
            == ["2026-11-23T10:15:00Z", "2026-11-23T10:30:00Z", "2026-11-23T10:45:00Z"])
        #expect(firings(calculator(.cron(try CronExpression("*/20 * * * * *"))), after: at("2026-11-23T10:00:00Z"), count: 3)
            == ["2026-11-23T10:00:20Z", "2026-11-23T10:00:40Z", "2026-11-23T10:01:00Z"], "six fields: seconds first")
        #expect(calculator(.cron(try CronExpression("0 9 * * mon-fri"))).nextSlot(after: at("2026-11-27T10:00:00Z"))
            == at("2026-11-30T09:00:00Z"), "Friday after 9 → Monday")
        #expect(calculator(.cron(try CronExpression("0 0 29 2 *"))).nextSlot(after: at("2026-11-23T00:00:00Z"))
            == at("2028-02-29T00:00:00Z"), "leap day")
        #expect(calculator(.cron(try CronExpression("0 12 1 * 0"))).nextSlot(after: at("2026-11-23T00:00:00Z"))
            == at("2026-11-29T12:00:00Z"), "both day fields restricted: either matches (Sunday 29th before the 1st)")
        #expect(calculator(.cron(try CronExpression("30 4 1,15 jan,jul *"))).nextSlot(after: at("2026-11-23T00:00:00Z"))
            == at("2027-01-01T04:30:00Z"))
    }

    /// Vixie cron (and cronie) treat a day field that starts with `*` as a star even with a step: the two day
    /// fields must then both match, not either.
    @Test func aDayFieldStartingWithAStarNarrowsTheOtherAsInVixieCron() throws {
        #expect(calculator(.cron(try CronExpression("0 0 */2 * mon"))).nextSlot(after: at("2026-12-07T05:00:00Z"))
            == at("2026-12-21T00:00:00Z"), "a Monday of odd date: the 14th is even")
        #expect(calculator(.cron(try CronExpression("0 0 */1 * mon"))).nextSlot(after: at("2026-12-07T05:00:00Z"))
            == at("2026-12-14T00:00:00Z"), "Mondays only, not every day")
        #expect(calculator(.cron(try CronExpression("0 0 1 * */2"))).nextSlot(after: at("2026-12-07T05:00:00Z"))
            == at("2027-04-01T00:00:00Z"), "a 1st on Sunday, Tuesday, Thursday or Saturday (Thursday 1 April; January to March are not)")
        #expect(calculator(.cron(try CronExpression("0 0 1,15 * mon"))).nextSlot(after: at("2026-12-07T05:00:00Z"))
            == at("2026-12-14T00:00:00Z"), "no star: either field (Monday the 14th before the 15th)")
        // Such an expression was accepted before (any weekday counted): it still decodes, and validated() refuses it.
        let narrowed = try CronExpression("0 0 30 2 */2")
        #expect { try Schedule.cron(narrowed).validated() } throws: { ($0 as? KeijiError)?.message.contains("never fire") == true }
    }

    /// In a repeated hour (New York falls back at 06:00Z on 7 November 2027, 02:00 EDT → 01:00 EST) a cron with `*`
    /// in its minute or hour field fires on both passes, as cron runs such jobs: `*/15` went from 01:45 EDT to 02:00
    /// EST, 75 minutes, and an hourly one missed an hour. One of fixed times still fires once.
    @Test func aCronThroughTheHoursFiresOnBothPassesOfARepeatedHour() throws {
        #expect(firings(calculator(.cron(try CronExpression("*/15 * * * *")), zone: "America/New_York"), after: at("2027-11-07T05:30:00Z"), count: 7)
            == ["2027-11-07T05:45:00Z", "2027-11-07T06:00:00Z", "2027-11-07T06:15:00Z", "2027-11-07T06:30:00Z", "2027-11-07T06:45:00Z",
                "2027-11-07T07:00:00Z", "2027-11-07T07:15:00Z"])
        #expect(firings(calculator(.cron(try CronExpression("30 * * * *")), zone: "America/New_York"), after: at("2027-11-07T04:00:00Z"), count: 4)
            == ["2027-11-07T04:30:00Z", "2027-11-07T05:30:00Z", "2027-11-07T06:30:00Z", "2027-11-07T07:30:00Z"])
        #expect(firings(calculator(.cron(try CronExpression("*/20 1 * * *")), zone: "America/New_York"), after: at("2027-11-07T04:00:00Z"), count: 7)
            == ["2027-11-07T05:00:00Z", "2027-11-07T05:20:00Z", "2027-11-07T05:40:00Z", "2027-11-07T06:00:00Z", "2027-11-07T06:20:00Z",
                "2027-11-07T06:40:00Z", "2027-11-08T06:00:00Z"], "01:00–01:40 twice that day, once the next")
        #expect(firings(calculator(.cron(try CronExpression("30 1 * * *")), zone: "America/New_York"), after: at("2027-11-07T04:00:00Z"), count: 2)
            == ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"], "a fixed time: the first pass only")
        // The next first-pass match months away, past the next spring forward: the second pass is still taken.
        #expect(firings(calculator(.cron(try CronExpression("*/20 2 * 10 0")), zone: "Europe/Paris"), after: at("2026-10-25T00:30:00Z"), count: 4)
            == ["2026-10-25T00:40:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:20:00Z", "2026-10-25T01:40:00Z"], "02:40 CEST, then 02:00–02:40 CET")
        #expect(firings(calculator(.cron(try CronExpression("*/15 1 1 11 *")), zone: "America/New_York"), after: at("2026-11-01T05:40:00Z"), count: 5)
            == ["2026-11-01T05:45:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z", "2026-11-01T06:30:00Z", "2026-11-01T06:45:00Z"])
        // Lord Howe falls back half an hour (02:00 +11 → 01:30 +10:30 on 4 April 2027, 15:00Z): 01:30 and 01:45 twice.
        #expect(firings(calculator(.cron(try CronExpression("*/15 * * * *")), zone: "Australia/Lord_Howe"), after: at("2027-04-03T14:20:00Z"), count: 5)
            == ["2027-04-03T14:30:00Z", "2027-04-03T14:45:00Z", "2027-04-03T15:00:00Z", "2027-04-03T15:15:00Z", "2027-04-03T15:30:00Z"])
    }

    @Test func invalidCronExpressionsAreRefusedWithTheReason() {
        for (text, fragment) in [("* * *", "5 fields"), ("60 * * * *", "minute"), ("* * * 13 *", "month"),
                                 ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards"), ("0 0 31 2 *", "never fire"),
                                 ("a * * * *", "minute")] {
            #expect { try CronExpression(text) } throws: { error in
                (error as? KeijiError)?.message.contains(fragment) == true
            }
        }
    }

    @Test func oneShotFiresOnce() {
        let once = calculator(.once(at: at("2026-12-01T09:00:00Z")))
        #expect(once.nextSlot(after: at("2026-11-23T00:00:00Z")) == at("2026-12-01T09:00:00Z"))
        #expect(once.nextSlot(after: at("2026-12-01T09:00:00Z")) == nil)
    }

    @Test func perTaskTimeZoneOverridesTheDefault() {
        var spec = ScheduleSpec(.weekly(days: [.monday], at: try! TimeOfDay(parsing: "09:00")))
        spec.timeZone = "Asia/Tokyo"
        let calc = ScheduleCalculator(spec: spec, defaultTimeZone: Self.utc, anchor: 0)
        #expect(calc.nextSlot(after: at("2026-11-22T00:00:00Z")) == at("2026-11-23T00:00:00Z"), "09:00 JST is 00:00 UTC")
    }

    @Test func jitterIsStableAndBounded() {
        var spec = ScheduleSpec(.every(1, .minutes))
        spec.jitterSeconds = 30
        let calc = ScheduleCalculator(spec: spec, defaultTimeZone: Self.utc, anchor: 0)
        let values = (0..<200).map { calc.jitter(taskID: "t", slot: Int64($0) * 60) }
        #expect(values.allSatisfy { (0...30).contains($0) } && Set(values).count > 10)
        #expect(calc.jitter(taskID: "t", slot: 60) == calc.jitter(taskID: "t", slot: 60))
    }

    @Test func catchUpWindowsAreBounded() {
        let calc = calculator(.every(1, .seconds))
        let window = calc.slots(after: at("2026-11-23T00:00:00Z"), through: at("2026-11-24T00:00:00Z"), limit: 5)
        #expect(window.slots.count == 5 && window.dropped == 86_400 - 5)
        #expect(window.slots.last == at("2026-11-24T00:00:00Z"))
        let daily = calculator(.cron(try! CronExpression("0 0 * * *")))
        let days = daily.slots(after: at("2026-11-01T00:00:00Z"), through: at("2026-11-23T12:00:00Z"), limit: 100)
        #expect(days.slots.count == 22 && days.dropped == 0)
    }

    struct Vector: Decodable {
        var name: String, zone: String, spec: ScheduleSpec, after: String, expected: [String]
    }

    @Test func dstVectorsFromAnIndependentImplementation() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/schedules/dst-vectors.json")
        let vectors = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: path))
        #expect(vectors.count >= 10)
        for vector in vectors {
            let calc = ScheduleCalculator(spec: vector.spec, defaultTimeZone: TimeZone(identifier: vector.zone)!, anchor: 0)
            #expect(firings(calc, after: at(vector.after), count: vector.expected.count) == vector.expected, "\(vector.name)")
        }
    }

    @Test func civilCalendarArithmeticRoundTrips() {
        for seconds in stride(from: Int64(-5_000_000_000), through: 5_000_000_000, by: 86_399 * 37) {
            #expect(CivilTime(secondsSinceEpoch: seconds).secondsSinceEpoch == seconds)
        }
        #expect(CivilTime(year: 2026, month: 11, day: 23).weekday == .monday)
        #expect(CivilTime(year: 1969, month: 12, day: 31).weekday == .wednesday)
        #expect(ISO8601.seconds(from: "2026-11-23T04:00:00+01:00") == ISO8601.seconds(from: "2026-11-23T03:00:00Z"))
        #expect(ISO8601.seconds(from: "2026-02-30T00:00:00Z") == nil)
    }

    /// The view's times read back to the millisecond (a fraction of one to three digits, more ignored), and only
    /// digits in each field: a sign where a digit belongs, or a malformed offset, is refused.
    @Test func iso8601TimesParseStrictly() {
        let base = ISO8601.seconds(from: "2026-11-23T03:00:00Z")! * 1000
        #expect(ISO8601.milliseconds(from: "2026-11-23T03:00:00Z") == base)
        #expect(ISO8601.milliseconds(from: "2026-11-23T03:00:00.448Z") == base + 448)
        #expect(ISO8601.milliseconds(from: "2026-11-23T03:00:00.4Z") == base + 400)
        #expect(ISO8601.milliseconds(from: "2026-11-23T03:00:00.45") == base + 450)
        #expect(ISO8601.milliseconds(from: "2026-11-23T03:00:00.4489Z") == base + 448)
        #expect(ISO8601.milliseconds(from: "2026-11-23 04:00:00.010+01:00") == base + 10)
        #expect(ISO8601.seconds(from: "2026-11-23T03:00:00-02:30") == base / 1000 + 9000)
        for bad in ["2026-11-23T+3:00:00Z", "+026-11-23T03:00:00Z", "2026-11-23T03:00:00+01x00", "2026-11-23T03:00:00+-1:00",
                    "2026-11-23T03:00:0 Z", "2026-11-23T03:00:00.4X", "2026-١١-23T03:00:00Z", "2026-11-23T03:00:00.4.5Z",
                    "2026-11-23T03:00:00.Z", "2026-11-23T03:00:00.", "2026-11-23T03:00:00..5Z"] {
            #expect(ISO8601.seconds(from: bad) == nil && ISO8601.milliseconds(from: bad) == nil, "\(bad)")
        }
    }

    /// The texts of a civil time: the view's (`T`), and people's (a space, as `keiji task --list` prints it); every
    /// field zero-padded, years outside 0…9999 in the general form.
    @Test func civilTimesAreWrittenPadded() {
        let time = CivilTime(year: 926, month: 3, day: 7, hour: 4, minute: 5, second: 9)
        #expect(time.description == "0926-03-07T04:05:09")
        #expect(time.spacedText == "0926-03-07 04:05:09")
        #expect(CivilTime(year: 2026, month: 12, day: 31, hour: 23, minute: 59, second: 59).spacedText == "2026-12-31 23:59:59")
        #expect(CivilTime(year: -3, month: 1, day: 2).spacedText == "-0003-01-02 00:00:00")
        #expect(CivilTime(year: 12026, month: 1, day: 2).description == "12026-01-02T00:00:00")
    }
}

struct TimeOfDayTests {
    @Test func seedFormatsAndBetterOnes() throws {
        let accepted: [(String, String)] = [("10:00PM", "22:00"), ("09:00PM", "21:00"), ("12:00AM", "00:00"), ("12:00PM", "12:00"),
                                            ("22:00", "22:00"), ("9:30", "09:30"), ("00:00", "00:00"), ("23:59", "23:59"),
                                            ("10:00pm", "22:00"), ("9:00PM", "21:00"), ("10:00 PM", "22:00"), ("06:30:15", "06:30:15")]
        for (text, expected) in accepted {
            #expect(try TimeOfDay(parsing: text).description == expected, "\(text)")
        }
        for text in ["13:00PM", "24:00", "9:5", "", "1", "10:60", "ten", "10:00XM", "0:00PM", "00:30AM", "+1:+0", "+1:00", "1:-0"] {
            #expect(throws: KeijiError.self, "\(text)") { try TimeOfDay(parsing: text) }
        }
    }

    /// A time out of range is named as written: `24:00` was "time 24:0:0 is out of range".
    @Test func anOutOfRangeTimeIsNamedAsWritten() {
        for text in ["24:00", "23:60", "07:05:60"] {
            #expect { try TimeOfDay(parsing: text) } throws: { error in
                (error as? KeijiError)?.message == "invalid time \"\(text)\": hours are 0–23, minutes and seconds 0–59"
            }
        }
        #expect { try TimeOfDay(hour: 7, minute: 5, second: 60) } throws: { error in
            (error as? KeijiError)?.message == "time 07:05:60 is out of range (00:00:00 to 23:59:59)"
        }
    }

    @Test func weekdays() throws {
        #expect(try Weekday(parsing: "friday") == .friday)
        #expect(try Weekday(parsing: "FRI") == .friday)
        #expect(throws: KeijiError.self) { try Weekday(parsing: "fr") }
        #expect(throws: KeijiError.self) { try Weekday(parsing: "someday") }
    }

    @Test func scheduleSpecJSONRoundTrips() throws {
        let specs = [ScheduleSpec(.every(10, .seconds)), ScheduleSpec(.weekly(days: [.friday], at: try TimeOfDay(parsing: "10:00PM")), timeZone: "Europe/London", jitterSeconds: 5),
                     ScheduleSpec(.cron(try CronExpression("*/5 * * * *"))), ScheduleSpec(.once(at: 1_800_000_000))]
        for spec in specs {
            let data = try JSONEncoder().encode(spec)
            #expect(try JSONDecoder().decode(ScheduleSpec.self, from: data) == spec)
        }
        // The shape decodes; ranges are `validated()`'s job, so a stored definition still decodes under stricter rules.
        let zero = try JSONDecoder().decode(ScheduleSpec.self, from: Data(#"{"every":0}"#.utf8))
        #expect(throws: KeijiError.self) { try zero.validated() }
        // A signed cron number, which Int(_:) read and older keiji journaled, still decodes; validated() refuses it, so replay
        // puts such a task in error with the reason (Reducer.refuseIfInvalid), and --resolve after a --create fixes it.
        let signed = try JSONDecoder().decode(ScheduleSpec.self, from: Data(#"{"cron":"+5 * * * *"}"#.utf8))
        #expect(signed.schedule == .cron(try CronExpression("+5 * * * *")))
        #expect(throws: KeijiError.self) { try signed.validated() }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ScheduleSpec.self, from: Data(#"{"every":"x"}"#.utf8)) }
        #expect(specs[0].schedule.displayString == "units:seconds,interval:10")
        #expect(specs[1].schedule.displayString == "day:Friday,time:22:00")
    }
}
