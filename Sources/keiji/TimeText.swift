import Foundation
import KeijiCore

/// Times and spans for people, as `--list` and `--runs` print them: instants in the configured zone
/// (`TIME_ZONE`) the way `systemctl list-timers` shows them, spans short ("4min 10s", "2h 3min", "1 day 3h").
struct TimeText {
    let clock: ZonedClock
    /// `TIME_ZONE` as written (Foundation reports UTC's identifier as `GMT`).
    let identifier: String

    init(settings: Settings) {
        clock = ZonedClock(settings.timeZone)
        identifier = settings.timeZoneIdentifier
    }

    /// `Wed 2026-12-02 14:30:05 UTC`: the wall time in the zone, and the zone's abbreviation at that instant (as
    /// Foundation names it: `GMT+1` for Europe/Paris in winter).
    func instant(milliseconds ms: Int64) -> String {
        let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let wall = clock.wallTime(at: seconds)
        let day = wall.weekday.description.prefix(3)
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        // Foundation calls UTC "GMT"; TIME_ZONE=UTC (or Etc/UTC) reads back as UTC.
        let zone = identifier.hasSuffix("UTC") ? "UTC" : clock.timeZone.abbreviation(for: date) ?? identifier
        return "\(day) \(wall.spacedText) \(zone)"
    }

    enum Finest { case seconds, milliseconds }

    /// The two largest non-zero units of a span: `4min 10s`, `2h 3min`, `1 day 3h`, `13ms` (with
    /// `.milliseconds`; `0s` for less than a second with `.seconds`). A negative span gets a `-`.
    static func span(milliseconds ms: Int64, finest: Finest) -> String {
        if ms < 0 { return "-" + span(milliseconds: ms == .min ? .max : -ms, finest: finest) }
        let units: [(Int64, String, String)] = [(86_400_000, " day", " days"), (3_600_000, "h", "h"), (60_000, "min", "min"), (1000, "s", "s"), (1, "ms", "ms")]
        var rest = finest == .seconds ? ms / 1000 * 1000 : ms
        var parts: [String] = []
        for (size, one, many) in units where parts.count < 2 {
            let count = rest / size
            rest %= size
            if count > 0 { parts.append("\(count)\(count == 1 ? one : many)") } else if !parts.isEmpty { break }
        }
        return parts.isEmpty ? (finest == .seconds ? "0s" : "0ms") : parts.joined(separator: " ")
    }

    /// Seconds with millisecond precision, for JSON.
    static func seconds(milliseconds ms: Int64) -> Double { Double(ms) / 1000 }
}
