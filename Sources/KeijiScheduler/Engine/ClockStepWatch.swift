#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Notices the wall clock stepping back (NTP, an operator, a VM's clock corrected) by comparing it with the
/// monotonic clock between two looks. A step forward shows itself (slots pass, the stall rule catches them up); a
/// step back is silent otherwise: slots are wall-clock instants and none runs twice, so nothing runs until the
/// clock comes back to the slots after the last ones run.
struct ClockStepWatch {
    /// How far back the wall clock must go, beyond the monotonic clock's drift, to be called a step.
    static let threshold: Int64 = 1000
    private var wall: Int64
    private var monotonic: Int64

    init(wall: Int64, monotonic: Int64 = Self.monotonicMilliseconds()) {
        (self.wall, self.monotonic) = (wall, monotonic)
    }

    /// Milliseconds the wall clock went back since the last look, against the monotonic clock; nil when it did not
    /// by more than ``threshold``.
    mutating func steppedBack(wall: Int64, monotonic: Int64 = Self.monotonicMilliseconds()) -> Int64? {
        defer { (self.wall, self.monotonic) = (wall, monotonic) }
        let back = (monotonic - self.monotonic) - (wall - self.wall)
        return back > Self.threshold ? back : nil
    }

    /// `CLOCK_BOOTTIME`: monotonic and counting a suspend, as the wall clock does (a resume is no step back).
    static func monotonicMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
