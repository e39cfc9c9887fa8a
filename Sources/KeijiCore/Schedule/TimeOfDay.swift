/// A wall-clock time of day, from the seed's `At("10:00PM")` (12-hour) or `At("22:00")` (24-hour) forms.
public struct TimeOfDay: Hashable, Sendable, Codable, CustomStringConvertible {
    public var hour: Int
    public var minute: Int
    public var second: Int

    public init(hour: Int, minute: Int, second: Int = 0) throws {
        guard (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second) else {
            let two = Self.twoDigits
            throw KeijiError(.invalidSchedule, "time \(two(hour)):\(two(minute)):\(two(second)) is out of range (00:00:00 to 23:59:59)")
        }
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// Parses `HH:MM`, `H:MM`, `HH:MM:SS` (24-hour) and `hh:MMAM`/`hh:MM PM` (12-hour, any case).
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        var body = Substring(trimmed)
        var meridiem: String?
        if body.hasSuffix("AM") || body.hasSuffix("PM") {
            meridiem = String(body.suffix(2))
            body = body.dropLast(2)
            while body.last == " " { body = body.dropLast() }
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 2 && $0.allSatisfy { ("0"..."9").contains($0) } }),
            parts.dropFirst().allSatisfy({ $0.count == 2 }),
            let rawHour = Int(parts[0]), let minute = Int(parts[1])
        else {
            throw KeijiError(.invalidSchedule, "invalid time \"\(text)\": use 24-hour HH:MM (22:00) or 12-hour hh:MMAM/PM (10:00PM)")
        }
        let second = parts.count == 3 ? Int(parts[2]) ?? -1 : 0
        var hour = rawHour
        if let meridiem {
            guard (1...12).contains(rawHour) else {
                throw KeijiError(.invalidSchedule, "invalid time \"\(text)\": a 12-hour time has hours 1–12")
            }
            hour = rawHour % 12 + (meridiem == "PM" ? 12 : 0)
        }
        // Named as written: `24:00` was echoed back as "time 24:0:0".
        guard let time = try? TimeOfDay(hour: hour, minute: minute, second: second) else {
            throw KeijiError(.invalidSchedule, "invalid time \"\(text)\": hours are 0–23, minutes and seconds 0–59")
        }
        self = time
    }

    /// 24-hour form, e.g. `22:00` or `06:30:15`.
    public var description: String {
        let two = Self.twoDigits
        return two(hour) + ":" + two(minute) + (second == 0 ? "" : ":" + two(second))
    }

    private static func twoDigits(_ n: Int) -> String { (0..<10).contains(n) ? "0\(n)" : "\(n)" }
}

/// A day of the week. Raw values follow the civil calendar: Sunday is 0.
public enum Weekday: Int, CaseIterable, Codable, Sendable, Comparable, CustomStringConvertible {
    case sunday = 0, monday, tuesday, wednesday, thursday, friday, saturday

    public init(parsing text: String) throws {
        let lower = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard lower.count >= 3, let day = Weekday.allCases.first(where: { "\($0)".lowercased().hasPrefix(lower) }) else {
            throw KeijiError(.invalidSchedule, "unknown day \"\(text)\": use monday … sunday")
        }
        self = day
    }

    public var description: String {
        ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"][rawValue]
    }

    public static func < (a: Weekday, b: Weekday) -> Bool { a.rawValue < b.rawValue }
}
