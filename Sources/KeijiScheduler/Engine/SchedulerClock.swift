import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The engine's source of wall time. Injectable so a test can step time forward (a stall, a clock step)
/// without waiting for it; the daemon always uses ``WallClock``.
public protocol SchedulerClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMilliseconds() -> Int64
    /// Microseconds since the Unix epoch (lateness samples).
    func nowMicroseconds() -> Int64
    /// Returns once `nowMilliseconds() >= deadline`; throws `CancellationError` when the task is cancelled.
    func sleep(untilMilliseconds deadline: Int64) async throws
}

/// `CLOCK_REALTIME`: slots are wall-clock instants.
public struct WallClock: SchedulerClock {
    public init() {}

    public func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public func nowMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Long waits are cut into 30 s pieces so a clock step is noticed.
    public func sleep(untilMilliseconds deadline: Int64) async throws {
        while true {
            let remaining = TimeArithmetic.sum(TimeArithmetic.product(deadline, 1000), -nowMicroseconds())
            if remaining <= 0 { return }
            try await Task.sleep(for: .microseconds(min(remaining, 30_000_000)), tolerance: .zero)
        }
    }
}
