import Foundation
import KeijiCore
import KeijiJournal
import Synchronization
import Testing

@testable import KeijiScheduler

/// The real journal I/O, except that the next `sync` after ``holdNextSync()`` waits for ``release()``: a test
/// can keep one batch from becoming durable while the engine goes on deciding firings. The held sync blocks its
/// thread, a thread of the cooperative pool when the journal was idle (the append syncs on its caller's thread):
/// release it as soon as the test can, and never hold two at once (two tests doing so froze the suite for 60 s).
final class HeldSyncJournalIO: InterceptedSyncJournalIO, @unchecked Sendable {
    /// Syncs to let through before the one held (nil: none is to be held).
    private let state = Mutex<(passing: Int?, holding: Bool)>((nil, false))
    private let gate = DispatchSemaphore(value: 0)

    /// Holds the sync after the next `passing` ones (a command's own, say, to hold the batch that follows it).
    func holdNextSync(after passing: Int = 0) { state.withLock { $0.passing = passing } }
    /// Whether a sync is waiting for ``release()`` now.
    var isHolding: Bool { state.withLock { $0.holding } }
    func release() { gate.signal() }

    override func beforeSync() throws {
        let hold = state.withLock { s -> Bool in
            guard let passing = s.passing else { return false }
            s.passing = passing > 0 ? passing - 1 : nil
            s.holding = passing == 0
            return s.holding
        }
        if hold {
            _ = gate.wait(timeout: .now() + 60)  // never hangs the suite if the test fails first
            state.withLock { $0.holding = false }
        }
    }
}

extension SchedulerEngine {
    /// When `name`'s next slot fires, counted from where the timer stands.
    func nextFireMilliseconds(_ name: TaskName) -> Int64? {
        guard let task = state.tasks[name] else { return nil }
        let calculator = task.scheduleCalculator(defaultTimeZone: timeZone)
        return calculator.nextSlot(after: cursor(of: name, task)).map { task.fireTimeMilliseconds(slot: $0, calculator: calculator) }
    }
}

/// A command journaled while a firing of its task waits to be journaled comes first in the journal; the run
/// must then honour it. Serialized: each test holds a sync, and two held at once freeze the cooperative pool.
@Suite(.serialized) struct CommandDuringSyncTests {
    /// `--disable` whose record is being synced when the task's slot comes due: the timer, which does not see the
    /// disable yet, decides the firing, and its `run.started` is journaled after the `task.disabled`. The run does
    /// not begin (no process), and it ends as stopped. Before, it ran after the disable was acknowledged.
    @Test func aRunJournaledAfterItsTasksDisableDoesNotBegin() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let ran = harness.home + "/ran"
        try await harness.defineOffline(try harness.commandTask("tick", "echo \"$KEIJI_SLOT\" >> '\(ran)'", every: 10))
        let name = harness.taskName("tick")
        let io = HeldSyncJournalIO()
        let clock = SteppedClock()
        let engine = harness.engine(spawn: true, clock: clock, journalIO: io)
        try await engine.start()
        #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.task == name } }, "the first slot runs")
        // Time stands still: nothing fires until the step below.
        #expect(await harness.wait { await engine.freezeIfQuiet([name], clock) })
        let ranBefore = (try? String(contentsOfFile: ran, encoding: .utf8)) ?? ""
        let before = try harness.entries().count
        io.holdNextSync()
        defer { io.release() }  // a failed #require before the release must not leave a pool thread parked
        let disable = Task { try await engine.submit(.taskDisabled(name)) }
        #expect(await harness.wait { io.isHolding }, "the disable's batch is being synced")
        // The slot comes due now; the timer decides it and its batch waits behind the held sync.
        let next = try #require(await engine.nextFireMilliseconds(name))
        clock.step(byMilliseconds: next - clock.nowMilliseconds() + 5)
        #expect(await harness.wait { await engine.runsInProgress == 1 }, "the slot was decided")
        io.release()
        _ = try await disable.value
        #expect(await harness.wait { await engine.runsInProgress == 0 })
        await engine.stop()

        let entries = Array(try harness.entries().dropFirst(before))
        let disabledAt = try #require(entries.firstIndex { if case .taskDisabled = $0.event { true } else { false } })
        let startedAt = try #require(entries.firstIndex { if case .runStarted = $0.event { true } else { false } }, "the slot was journaled")
        #expect(disabledAt < startedAt, "the disable came first in the journal")
        let start = try #require(entries.startedRuns.first)
        let end = try #require(entries.compactMap { if case .runFinished(let end) = $0.event, end.runID == start.runID { end } else { nil } }.first)
        #expect(end.outcome == .stopped && end.message == "the task was disabled before the run began", "\(end)")
        #expect(((try? String(contentsOfFile: ran, encoding: .utf8)) ?? "") == ranBefore, "no process began")
    }

    /// `--run`s taken by the timer while a `--disable` or `--delete` of their task was being synced: their
    /// `run.started` comes after the command in the journal. They do not begin (no process) and end as stopped,
    /// saying why; after an `--enable`, a `--run` runs. Before, a manual run began all the same, after the
    /// disable or delete was acknowledged (and after a disable it ran to its end).
    @Test(arguments: [false, true]) func manualRunsTakenDuringADisableOrDeleteDoNotBegin(delete: Bool) async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let ran = harness.home + "/ran"
        try await harness.defineOffline(try harness.commandTask("now", "echo \"$KEIJI_RUN_ID\" >> '\(ran)'", every: 3600) { $0.overlap = .allow })
        let name = harness.taskName("now")
        let io = HeldSyncJournalIO()
        let engine = harness.engine(spawn: true, journalIO: io)
        try await engine.start()
        let before = try harness.entries().count
        io.holdNextSync()
        defer { io.release() }  // a failed #require before the release must not leave a pool thread parked
        let command = Task { try await engine.submit(delete ? .taskDeleted(name) : .taskDisabled(name)) }
        #expect(await harness.wait { io.isHolding }, "the command's batch is being synced")
        // The timer takes queued triggers as it fires them (``SchedulerEngine/fireDue``): the task is not disabled yet.
        let now = engine.clock.nowMilliseconds()
        let manual = Array(repeating: SchedulerEngine.Firing(task: name, slot: nil, fireAtMs: now, trigger: .manual), count: 3)
        let firing = Task { await engine.fire(manual) }
        #expect(await harness.wait { await engine.runsInProgress == 3 }, "the runs were taken")
        io.release()
        _ = try await command.value
        _ = await firing.value
        #expect(await harness.wait { await engine.runsInProgress == 0 })

        let entries = Array(try harness.entries().dropFirst(before))
        let commandAt = try #require(entries.firstIndex { $0.isCommand })
        let started = entries.enumerated().filter { if case .runStarted = $0.element.event { true } else { false } }.map(\.offset)
        #expect(started.count == 3 && started.allSatisfy { $0 > commandAt }, "the runs were journaled after the command")
        let why = delete ? "the task was deleted before the run began" : "the task was disabled before the run began"
        #expect(entries.finishedRuns.count == 3 && entries.finishedRuns.allSatisfy { $0.outcome == .stopped && $0.message == why },
                "\(entries.finishedRuns)")
        #expect(!FileManager.default.fileExists(atPath: ran), "no process began")
        if !delete {
            _ = try await engine.submit(.taskEnabled(name))
            _ = try await engine.submit(.taskTriggered(name))
            #expect(await harness.wait { try harness.entries().finishedRuns.contains { $0.outcome == .succeeded } }, "a --run after --enable runs")
        }
        await engine.stop()
    }

    /// A trigger stays queued (`pendingTriggers`) until its run's `run.started` is applied. A command on the task
    /// applied meanwhile (another `--run`, an `--enable`, a `--create --force`) re-arms it: the trigger being started
    /// was taken again, and 15 parallel `--run`s started 16 to 20 runs. Here the task is re-armed, as such a
    /// command does, while its run's batch is held in its sync.
    @Test func aTriggerBeingStartedIsNotTakenAgainWhenItsTaskIsReArmed() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("many", "true", every: 3600) { $0.overlap = .allow })
        let name = harness.taskName("many")
        let io = HeldSyncJournalIO()
        let engine = harness.engine(spawn: false, journalIO: io)
        try await engine.start()
        io.holdNextSync(after: 1)  // the trigger's own sync passes; its run's batch is held
        defer { io.release() }  // a failed #require before the release must not leave a pool thread parked
        _ = try await engine.submit(.taskTriggered(name))
        #expect(await harness.wait {
            let taken = await engine.runsInProgress
            return io.isHolding && taken == 1
        }, "the run is taken, its run.started held")
        await engine.arm(name)
        #expect(await engine.armsASlot(name), "the trigger being started is not armed again")
        io.release()
        #expect(await harness.wait {
            let going = await engine.runsInProgress
            return try harness.entries().finishedRuns.count == 1 && going == 0
        })
        await engine.stop()
        #expect(try harness.entries().startedRuns.count == 1, "one trigger, one run")
    }
}
