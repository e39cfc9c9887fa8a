import Testing
@testable import keiji

/// `task --list`'s LEFT column, from the table alone: a slot firing at this instant is a matter of milliseconds, which
/// a run of the binary cannot aim at.
struct TimerTableTests {
    /// A slot due within the second either side of now is `now`: one firing at this instant said `overdue 0s`.
    @Test func aSlotDueWithinTheSecondIsNow() {
        let now: Int64 = 1_800_000_000_000
        for next in [now - 300, now, now + 999, now - 999] {
            #expect(TimerTable.left(next: next, now: now) == "now", "\(next - now) ms")
        }
        #expect(TimerTable.left(next: now + 1000, now: now) == "1s")
        #expect(TimerTable.left(next: now - 1000, now: now) == "overdue 1s")
        #expect(TimerTable.left(next: now + 61_999, now: now) == "1min 1s")
        #expect(TimerTable.left(next: now - 61_000, now: now) == "overdue 1min 1s")
    }

    /// A last start ahead of now (the wall clock stepped back since) said `-8min 53s ago`.
    @Test func aLastStartAheadOfNowIsSaidToBeInTheFuture() {
        let now: Int64 = 1_800_000_000_000
        #expect(TimerTable.passed(last: now + 533_000, now: now) == "in the future: clock behind?")
        #expect(TimerTable.passed(last: now + 500, now: now) == "0s ago")
        #expect(TimerTable.passed(last: now - 61_000, now: now) == "1min 1s ago")
    }
}
