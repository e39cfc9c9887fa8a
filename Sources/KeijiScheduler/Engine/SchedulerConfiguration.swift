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
    /// The timer loop wakes at most once per this many milliseconds: what falls due meanwhile fires together, as
    /// one journal batch (one sync). Each wake costs a sleep, a batch and its sync whatever the batch holds: at
    /// 10,000 firings a second, 2 ms took 15 % less CPU than 1 ms, for 1 ms more lateness at the median.
    public var timerTickMilliseconds: Int64 = 2
    /// Record per-firing lateness samples (for the benchmark).
    public var recordLateness = false
    /// Where the engine reads the time and sleeps: the wall clock, or a test's stand-in that can jump.
    public var clock: any SchedulerClock = WallClock()
    /// Where the engine counts runs, lateness, bus commands and its recovery for `GET /metrics`; nil (tests, the
    /// benchmark, `METRICS_PORT=0`) counts nothing. The journal's figures come through `journalOptions.observer`.
    public var metrics: SchedulerMetrics?

    public init(workspace: Workspace, settings: Settings) {
        self.workspace = workspace
        self.settings = settings
    }
}

/// Firing lateness samples, in microseconds (wake: the loop woke; start: `run.started` was durable).
public struct LatenessSamples: Sendable {
    public var wake: [Int64] = []
    public var start: [Int64] = []
}
