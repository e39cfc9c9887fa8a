import Foundation

/// Computes when a schedule fires next. Pure: the same spec, anchor and instant always give the same
/// answer, so replaying a journal recomputes the same slots.
public struct ScheduleCalculator: Sendable {
    public let spec: ScheduleSpec
    public let clock: ZonedClock
    /// Where interval schedules count from (seconds since the epoch).
    public let anchor: Int64

    public init(spec: ScheduleSpec, defaultTimeZone: TimeZone, anchor: Int64) {
        self.spec = spec
        self.clock = ZonedClock(spec.timeZone.flatMap(TimeZone.init(identifier:)) ?? defaultTimeZone)
        self.anchor = anchor
    }

    /// The first slot strictly after `instant` (seconds since the epoch), or nil when there is none (a
    /// one-shot in the past, or a cron that cannot fire within five years).
    public func nextSlot(after instant: Int64) -> Int64? {
        switch spec.schedule {
        case .every:
            // Checked arithmetic: a definition replay refused (an interval past `Int64`) gives no slot, not a trap.
            guard let interval = spec.schedule.intervalSeconds, interval > 0 else { return nil }
            if instant < anchor { return Self.checked(anchor.addingReportingOverflow(interval)) }
            guard let distance = Self.checked(instant.subtractingReportingOverflow(anchor)),
                  let steps = Self.checked((distance / interval).addingReportingOverflow(1)),
                  let offset = Self.checked(steps.multipliedReportingOverflow(by: interval))
            else { return nil }
            return Self.checked(anchor.addingReportingOverflow(offset))
        case .weekly(let days, let time):
            let today = clock.wallTime(at: instant)
            for offset in 0...8 {
                let day = CivilTime(year: today.year, month: today.month, day: today.day).addingDays(offset)
                guard days.contains(day.weekday) else { continue }
                let wall = CivilTime(year: day.year, month: day.month, day: day.day, hour: time.hour, minute: time.minute, second: time.second)
                let candidate = clock.instant(for: wall)
                if candidate > instant { return candidate }
            }
            return nil
        case .cron(let expression):
            var start = clock.wallTime(at: instant).addingSeconds(1)
            for _ in 0..<100_000 {
                guard let wall = expression.nextMatch(atOrAfter: start) else { return nil }
                let candidate = clock.instant(for: wall)
                // A fold's second pass and a gap-shifted duplicate name instants already passed: skip them.
                if candidate > instant {
                    guard expression.firesOnBothPassesOfAFold, let second = secondPassMatch(expression, after: instant, before: candidate) else {
                        return candidate
                    }
                    return second
                }
                start = wall.addingSeconds(1)
            }
            return nil
        case .once(let at):
            return at > instant ? at : nil
        }
    }

    /// The first match of `expression` after `instant` and before `next` on the second pass of a repeated hour: the
    /// wall times after a fall-back transition within a day of `instant`, which ``ZonedClock``
    /// names by their first occurrence. Without it `*/15 * * * *` went from 01:45 EDT to 02:00 EST, 75 minutes.
    func secondPassMatch(_ expression: CronExpression, after instant: Int64, before next: Int64) -> Int64? {
        // A second pass after `instant` needs a fall back within a fold's length of it: looked for within a day either
        // side (zones change offset at most once in two days), not up to `next`, which can be past the next spring forward.
        var low = instant - 86_400, high = min(next, instant + 86_400)
        let offsetBefore = clock.offset(at: low), offsetAfter = clock.offset(at: high)
        guard offsetBefore > offsetAfter else { return nil }
        while high - low > 1 {  // the transition: the first instant at the later offset
            let middle = low + (high - low) / 2
            if clock.offset(at: middle) == offsetBefore { low = middle } else { high = middle }
        }
        let transition = high, foldLength = offsetBefore - offsetAfter
        // The repeated wall times are [transition, transition + foldLength) read at the later offset.
        var wall = CivilTime(secondsSinceEpoch: max(transition, instant + 1) + offsetAfter)
        for _ in 0..<10_000 {
            guard let match = expression.nextMatch(atOrAfter: wall) else { return nil }
            let second = match.secondsSinceEpoch - offsetAfter
            guard second < transition + foldLength, second < next else { return nil }
            if second > instant { return second }
            wall = match.addingSeconds(1)
        }
        return nil
    }

    /// Every slot in `(after, through]`, at most `limit` of them (the most recent ones are kept).
    public func slots(after: Int64, through: Int64, limit: Int) -> (slots: [Int64], dropped: Int) {
        var slots: [Int64] = []
        var dropped = 0
        var cursor = after
        if case .every = spec.schedule {
            // Jump straight to the window's tail: counting a year of 1-second slots one by one is pointless.
            guard let interval = spec.schedule.intervalSeconds, let first = nextSlot(after: after), first <= through,
                  let span = Self.checked(through.subtractingReportingOverflow(first))
            else { return ([], 0) }
            let total = Int(span / interval) + 1
            dropped = max(0, total - limit)
            var slot = first + Int64(dropped) * interval
            while slot <= through {
                slots.append(slot)
                guard let next = Self.checked(slot.addingReportingOverflow(interval)) else { break }
                slot = next
            }
            return (slots, dropped)
        }
        while let next = nextSlot(after: cursor), next <= through {
            slots.append(next)
            if slots.count > limit { slots.removeFirst(); dropped += 1 }
            cursor = next
        }
        return (slots, dropped)
    }

    private static func checked(_ result: (partialValue: Int64, overflow: Bool)) -> Int64? {
        result.overflow ? nil : result.partialValue
    }

    /// The stable delay in seconds added to a slot for this task (0 without jitter).
    public func jitter(taskID: String, slot: Int64) -> Int64 {
        guard spec.jitterSeconds > 0 else { return 0 }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in taskID.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        hash = (hash ^ UInt64(bitPattern: slot)) &* 0x100_0000_01B3
        return Int64(hash % (UInt64(spec.jitterSeconds) + 1))
    }
}

extension TaskState {
    /// The calculator of this task's slots: its schedule, counted from its anchor.
    public func scheduleCalculator(defaultTimeZone: TimeZone) -> ScheduleCalculator {
        ScheduleCalculator(spec: definition.schedule, defaultTimeZone: defaultTimeZone, anchor: anchor)
    }
}
