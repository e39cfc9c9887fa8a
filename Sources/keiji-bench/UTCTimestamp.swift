/// RFC 3339 UTC timestamps from seconds since the Unix epoch, without Foundation or time zones.
enum UTCTimestamp {
    /// `2026-11-23T04:00:00Z`, or with `milliseconds`, `2026-11-23T04:00:00.123Z`.
    static func format(secondsSinceEpoch seconds: Int64, milliseconds: Int? = nil) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        var text = "\(year)-\(twoDigits(month))-\(twoDigits(day))T"
        text += "\(twoDigits(secondOfDay / 3600)):\(twoDigits(secondOfDay / 60 % 60)):\(twoDigits(secondOfDay % 60))"
        if let milliseconds {
            let ms = milliseconds % 1000
            text += "." + (ms < 10 ? "00" : ms < 100 ? "0" : "") + String(ms)
        }
        return text + "Z"
    }

    /// Seconds since the epoch of midnight UTC on a date.
    static func secondsSinceEpoch(year: Int, month: Int, day: Int) -> Int64 {
        // Howard Hinnant's days_from_civil.
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return (era * 146_097 + dayOfEra - 719_468) * 86_400
    }

    /// Howard Hinnant's civil_from_days.
    private static func civilDate(daysSinceEpoch: Int64) -> (year: Int, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        let year = Int(yearOfEra + era * 400) + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func twoDigits(_ n: Int) -> String {
        n < 10 ? "0" + String(n) : String(n)
    }
}
