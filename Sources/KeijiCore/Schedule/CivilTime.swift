/// A wall-clock date and time with no zone: what a schedule names ("Friday 22:00"). Arithmetic is on the
/// proleptic Gregorian calendar (Howard Hinnant's days-from-civil), independent of Foundation's Calendar.
public struct CivilTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    /// The civil time `seconds` after 1970-01-01T00:00:00 (as if the zone were UTC).
    public init(secondsSinceEpoch seconds: Int64) {
        let days = Int(floorDivide(seconds, 86_400))
        let rest = Int(seconds - Int64(days) * 86_400)
        let (y, m, d) = CivilTime.civil(fromDays: days)
        self.init(year: y, month: m, day: d, hour: rest / 3600, minute: rest % 3600 / 60, second: rest % 60)
    }

    /// Seconds since 1970-01-01T00:00:00, reading this civil time as UTC.
    public var secondsSinceEpoch: Int64 {
        Int64(CivilTime.days(year: year, month: month, day: day)) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    public var weekday: Weekday { Weekday(rawValue: ((CivilTime.days(year: year, month: month, day: day) % 7) + 11) % 7)! }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    public static func < (a: CivilTime, b: CivilTime) -> Bool { a.secondsSinceEpoch < b.secondsSinceEpoch }

    public var description: String { text(milliseconds: nil, zulu: false) }

    /// `YYYY-MM-DD HH:MM:SS`, as the CLI's tables show it (`keiji task --list` writes two a task).
    public var spacedText: String { text(milliseconds: nil, zulu: false, separator: " ") }

    /// `YYYY-MM-DDTHH:MM:SS` (`separator` between the date and the time), then `.mmm` with `milliseconds` and `Z`
    /// with `zulu`. The query view writes three or four of these per row, thousands of rows a second under load, so
    /// years 0…9999 (all a journal can hold) are written digit by digit into the string's own storage; padded
    /// interpolation cost more than the rest of the row. Other years keep the general form (a sign, more digits).
    func text(milliseconds: Int?, zulu: Bool, separator: Unicode.Scalar = "T") -> String {
        guard (0...9999).contains(year) else {
            func pad(_ n: Int, _ w: Int = 2) -> String { (n < 0 ? "-" : "") + String(repeating: "0", count: max(0, w - String(abs(n)).count)) + String(abs(n)) }
            return "\(pad(year, 4))-\(pad(month))-\(pad(day))\(Character(separator))\(pad(hour)):\(pad(minute)):\(pad(second))"
                + (milliseconds.map { "." + pad($0, 3) } ?? "") + (zulu ? "Z" : "")
        }
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var end = 0
            func digits(_ value: Int, _ width: Int) {
                var value = value
                for index in stride(from: end + width - 1, through: end, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
                end += width
            }
            func mark(_ character: Unicode.Scalar) {
                buffer[end] = UInt8(ascii: character)
                end += 1
            }
            digits(year, 4); mark("-"); digits(month, 2); mark("-"); digits(day, 2)
            mark(separator); digits(hour, 2); mark(":"); digits(minute, 2); mark(":"); digits(second, 2)
            if let milliseconds { mark("."); digits(milliseconds, 3) }
            if zulu { mark("Z") }
            return end
        }
    }

    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

func floorDivide(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
