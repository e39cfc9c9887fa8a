import Foundation

/// Converts between instants and wall times in one time zone, with keiji's DST policy:
///
/// - **Gap** (spring forward): a wall time that does not exist names the instant it would have been under the
///   old offset, i.e. it is shifted forward by the gap (02:30 in New York on a spring-forward day → 03:30 EDT).
/// - **Fold** (fall back): a wall time that exists twice names its **first** occurrence only, so a schedule of
///   fixed times fires once in a repeated hour. (A cron expression with `*` in its second, minute or hour field
///   fires on both passes, as cron does: ``ScheduleCalculator/secondPassMatch(_:after:before:)``.)
public struct ZonedClock: Sendable {
    public let timeZone: TimeZone

    public init(_ timeZone: TimeZone) { self.timeZone = timeZone }

    public func offset(at instant: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
    }

    public func wallTime(at instant: Int64) -> CivilTime {
        CivilTime(secondsSinceEpoch: instant + offset(at: instant))
    }

    /// The instant a wall time names (see the type's DST policy).
    public func instant(for wall: CivilTime) -> Int64 {
        let local = wall.secondsSinceEpoch
        // Real zones change offset at most once within a day; the offsets a day either side bracket it.
        let before = offset(at: local - 86_400)
        let after = offset(at: local + 86_400)
        let early = local - before
        let late = local - after
        let earlyValid = offset(at: early) == before
        let lateValid = offset(at: late) == after
        switch (earlyValid, lateValid) {
        case (true, true): return min(early, late)  // fold: first occurrence
        case (true, false): return early
        case (false, true): return late
        case (false, false): return early  // gap: shifted forward by the gap's length
        }
    }
}
