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
    /// The environment runs take their base from (``TaskEnvironments/inherited(from:)``): the scheduler's own, or a
    /// test's, which must not `setenv` in a process whose other tests read the environment meanwhile.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// How long a graceful stop waits for runs before killing them.
    public var shutdownGrace: Duration = .seconds(10)
    /// How long a stop waits for the database's steps together (the loops' last statements, the cluster's leave, the
    /// view's last flush): under `keiji system --stop`'s 30 s with the shutdown grace's 10. Tests shorten it.
    public var stopDatabaseBound: Duration = .seconds(5)
    /// A checkpoint is written after this many records (and at every clean stop), but not sooner than
    /// `checkpointSpacing` after the last one.
    public var checkpointEvery = 50_000
    /// Writing a checkpoint `fsync`s megabytes and compaction unlinks segments; on ext4 the journal's next
    /// `fdatasync` waits for that flush. At 10,000 firings a second (20,000 records) 50,000 records came every
    /// 2.5 s, each a stall of the firings behind it; 10 s apart, a crash replays at most ~200,000 records
    /// (a fifth of a second).
    public var checkpointSpacing: Duration = .seconds(10)
    /// How often the query view is brought up to date.
    public var viewFlushInterval: Duration = .milliseconds(200)
    /// Under load (a wake that fired at least `busyTickFirings` runs for each millisecond whose firings it took: 1 +
    /// ``firingWindowMilliseconds``; about 8,000 firings a second), the timer loop wakes at most once per this
    /// many milliseconds, and what falls due meanwhile fires together as one journal batch (one sync). Each
    /// wake costs a sleep, a batch and its sync whatever the batch holds: at 10,000 firings a second (no spawn),
    /// 1 ms took 0.57 cores, 2 ms 0.45–0.46, 3 ms 0.41–0.42 (p99 start 0.45, 1.6 and 2.6 ms). Below that load,
    /// every millisecond is served.
    public var busyTickMilliseconds: Int64 = 3
    public var busyTickFirings = 8
    /// The timer loop takes a firing this many milliseconds before its slot, so that its `run.started` is durable
    /// when the slot comes, and the run starts then, not a busy tick and a sync later (start p99 at 10,000 firings
    /// a second, no spawn: 6.1 ms without a lead). A sync that stalls (another writer on the disk, the host) delays
    /// a run only by what it takes beyond the lead: while another writer made syncs stall (p99 ~11 ms, a few up to
    /// ~100 ms), the start p99 was 23–26 ms with a 5 ms lead, 4.5–8.1 ms with 25 ms in five runs of six
    /// (docs/benchmarks.md, 2026-12-05). With the window below, a firing is taken 45 to 65 ms before its slot,
    /// room for the sync (and, in a cluster, the claim). A crash inside the lead leaves a `run.started` of a
    /// run that never began; recovery treats it as interrupted, as it does a crash between the sync and the spawn.
    public var firingLeadMilliseconds: Int64 = 45
    /// The most dated starts keiji-spawn-server holds at once (``SchedulerEngine/datesStarts``): each keeps its
    /// run's log descriptor open there until its slot, and a process commonly may have 1,024. 10,000 firings a
    /// second with the 45 ms lead and the 20 ms window hold about 650; beyond the limit, runs wait for their slots
    /// in the scheduler, as without dated starts.
    public var heldStartsLimit = 512
    /// When a firing's lead begins, the timer loop also takes the firings whose leads begin within this many
    /// milliseconds after it, so the firings of 1,000 tasks spread over a second are journaled as one batch (one
    /// sync, one hand-off to the journal's writer and back) every window instead of every millisecond; each run still
    /// begins at its slot. With ``endedRunsInterval``, at 1,000 spawning runs a second: 0.9 → 0.3 syncs and about a
    /// fifth less of the scheduler's CPU per run (docs/benchmarks.md, 2026-12-05, "(night)"). 20 ms rather than 5: in
    /// a cluster each window is one claim statement, and three nodes at 1,000 runs a second made 99–101 transactions a
    /// second each instead of 184–188, with 17–28 % less of keiji's CPU and 5–13 % less of the database's per run
    /// (docs/benchmarks.md, 2026-12-06); one node, with or without spawns, was the same within the noise.
    public var firingWindowMilliseconds: Int64 = 20
    /// Under load, the `run.finished` of the runs that end are journaled as one batch at most this often; the first
    /// end after a quieter spell is journaled at once. A run stays registered until its end is durable, so this is
    /// also how much later than the process's exit that can be; a slot whose moment comes after the exit is not its
    /// overlap meanwhile (``SchedulerEngine/hasRunsGoing(_:at:)``).
    public var endedRunsInterval: Duration = .milliseconds(5)
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
