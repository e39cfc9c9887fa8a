import Foundation
import KeijiCore
import KeijiJournal

/// What a scheduler needs to know to start.
public struct SchedulerConfiguration: Sendable {
    public var workspace: Workspace
    public var settings: Settings
    public var journalOptions = JournalOptions()
    /// `false` runs the whole firing path (journaling, state, view) without starting processes: the
    /// benchmark's no-spawn mode.
    public var spawnProcesses = true
    /// How long a graceful stop waits for runs before killing them.
    public var shutdownGrace: Duration = .seconds(10)
    /// A checkpoint is written after this many records (and at every clean stop).
    public var checkpointEvery = 50_000
    /// How often the query view is brought up to date.
    public var viewFlushInterval: Duration = .milliseconds(200)
    /// Record per-firing lateness samples (for the benchmark).
    public var recordLateness = false

    public init(workspace: Workspace, settings: Settings) {
        self.workspace = workspace
        self.settings = settings
    }
}

/// Wall time for the scheduler, in milliseconds since the Unix epoch.
enum WallClock {
    static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func nowMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Sleeps until a wall-clock instant. Long waits are cut into 30 s pieces so a clock step is noticed.
    static func sleep(untilMilliseconds deadline: Int64) async throws {
        while true {
            let remaining = TimeArithmetic.sum(TimeArithmetic.product(deadline, 1000), -nowMicroseconds())
            if remaining <= 0 { return }
            try await Task.sleep(for: .microseconds(min(remaining, 30_000_000)), tolerance: .zero)
        }
    }
}

/// Firing lateness samples, in microseconds (wake: the loop woke; start: `run.started` was durable).
public struct LatenessSamples: Sendable {
    public var wake: [Int64] = []
    public var start: [Int64] = []
}
