import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// With the wall clock, a run taken within the firing lead goes to the spawn server as soon as its `run.started` is
/// durable, dated at its slot, and the server holds it until then. These tests use leads of seconds, so that "held"
/// is a state that lasts, and look at what the run's process did (a stamp, a marker), not at how late it was.
struct DatedStartTests {
    /// `tick`, every `every` seconds: each run appends `<run id> <start time in ns>` to `stamps` (and so creates it).
    struct HeldRun {
        let harness: SchedulerHarness
        let engine: SchedulerEngine
        let name: TaskName
        let stamps: String

        init(every seconds: Int, leadMilliseconds: Int64, tasks: Int = 1, heldStartsLimit: Int? = nil) async throws {
            harness = try SchedulerHarness()
            stamps = harness.home + "/stamps"
            for index in 0..<tasks {
                let raw = index == 0 ? "tick" : "tick-\(index)"
                try await harness.defineOffline(try harness.commandTask(raw, "echo \"$KEIJI_RUN_ID $(date +%s%N)\" >> '\(stamps)'", every: seconds))
            }
            name = harness.taskName("tick")
            engine = harness.engine(firingLeadMilliseconds: leadMilliseconds, heldStartsLimit: heldStartsLimit)
            try await engine.start()
        }

        var stampLines: [Substring] { ((try? String(contentsOfFile: stamps, encoding: .utf8)) ?? "").split(separator: "\n") }

        /// The first run's `run.started`, once it is durable.
        func firstStart() async throws -> JournalEntry {
            let harness = harness
            #expect(await harness.wait { try harness.entries().contains { if case .runStarted = $0.event { true } else { false } } },
                    "the first slot is taken, a lead ahead")
            return try #require(try harness.entries().first { if case .runStarted = $0.event { true } else { false } })
        }

        func end(of start: JournalEntry) throws -> RunEnd? {
            guard case .runStarted(let run) = start.event else { return nil }
            return try harness.entries().finishedRuns.first { $0.runID == run.runID }
        }
    }

    /// Sent 1.5 s ahead, every run's process begins at its slot (the moment its `run.started` is dated at), not before.
    @Test func aDatedRunBeginsAtItsSlotNotWhenItIsSent() async throws {
        let held = try await HeldRun(every: 2, leadMilliseconds: 1500)
        defer { held.harness.remove() }
        #expect(await held.harness.wait { held.stampLines.count >= 3 }, "three runs")
        await held.engine.stop()
        let moments = Dictionary(try held.harness.entries().compactMap { entry -> (String, Int64)? in
            if case .runStarted(let start) = entry.event { (start.runID, entry.at) } else { nil }
        }, uniquingKeysWith: { first, _ in first })
        for line in held.stampLines {
            let parts = line.split(separator: " ")
            let (runID, stamp) = (String(parts[0]), Int64(parts[1]) ?? 0)
            let moment = try #require(moments[runID], "run \(runID) has its run.started")
            #expect(stamp >= moment * 1_000_000, "run \(runID) began \(Double(moment * 1_000_000 - stamp) / 1e6) ms before its slot")
        }
    }

    /// A `--disable` applied while the spawn server holds the run (its slot 300 s away, so that a loaded machine has
    /// that long to apply it): the start is withdrawn, the run never begins, and it ends as stopped, as one whose task
    /// was disabled before it was sent.
    @Test func aDisableWhileTheServerHoldsTheRunWithdrawsIt() async throws {
        let held = try await HeldRun(every: 305, leadMilliseconds: 300_000)
        defer { held.harness.remove() }
        let start = try await held.firstStart()
        #expect(await held.harness.wait { await held.engine.runsHandedToTheSpawnServer == 1 }, "sent to the spawn server")
        _ = try await held.engine.submit(.taskDisabled(held.name))
        #expect(await held.harness.wait { try held.end(of: start) != nil }, "the run ends")
        let end = try #require(try held.end(of: start))
        #expect(end.outcome == .stopped && end.message == "the task was disabled before the run began", "\(end)")
        #expect(held.stampLines.isEmpty, "no process began")
        #expect(held.harness.log(of: "tick").contains("withdrawn: the task was disabled before the run began"), "\(held.harness.log(of: "tick"))")
        await held.engine.stop()
    }

    /// A `--stop` applied while the spawn server holds the run: withdrawn as at a `--disable`, not begun and then
    /// SIGTERMed. The schedule goes on.
    @Test func aTaskStopWhileTheServerHoldsTheRunWithdrawsIt() async throws {
        let held = try await HeldRun(every: 305, leadMilliseconds: 300_000)
        defer { held.harness.remove() }
        let start = try await held.firstStart()
        #expect(await held.harness.wait { await held.engine.runsHandedToTheSpawnServer == 1 }, "sent to the spawn server")
        _ = try await held.engine.submit(.taskStopRequested(held.name))
        #expect(await held.harness.wait { try held.end(of: start) != nil }, "the run ends")
        let end = try #require(try held.end(of: start))
        #expect(end.outcome == .stopped && end.message == "a stop was requested before the run began", "\(end)")
        #expect(held.stampLines.isEmpty, "no process began")
        #expect(await held.engine.state.tasks[held.name]?.isDisabled == false)
        await held.engine.stop()
    }

    /// A redefinition applied while the spawn server holds a run of the old definition: withdrawn, as at a
    /// `--disable` (it began at its slot with the old command, after the new one was acknowledged).
    @Test func aRedefinitionWhileTheServerHoldsTheRunWithdrawsIt() async throws {
        let held = try await HeldRun(every: 305, leadMilliseconds: 300_000)
        defer { held.harness.remove() }
        let start = try await held.firstStart()
        #expect(await held.harness.wait { await held.engine.runsHandedToTheSpawnServer == 1 }, "sent to the spawn server")
        let redefined = try held.harness.commandTask("tick", "true", every: 305)
        _ = try await held.engine.submit(.taskSaved(redefined, taskID: UUID().uuidString.lowercased()))
        #expect(await held.harness.wait { try held.end(of: start) != nil }, "the run ends")
        let end = try #require(try held.end(of: start))
        #expect(end.outcome == .stopped && end.message == "the task was redefined before the run began", "\(end)")
        #expect(held.stampLines.isEmpty, "no process of the old command began")
        await held.engine.stop()
    }

    /// Stopping while the spawn server holds the run: it ends unbegun, as a run awaiting its slot in the scheduler
    /// does, and the stop does not wait for its slot.
    @Test func aStopWhileTheServerHoldsTheRunEndsItUnbegun() async throws {
        let held = try await HeldRun(every: 305, leadMilliseconds: 300_000)
        defer { held.harness.remove() }
        let start = try await held.firstStart()
        #expect(await held.harness.wait { await held.engine.runsHandedToTheSpawnServer == 1 }, "sent to the spawn server")
        await held.engine.stop()
        let end = try #require(try held.end(of: start), "the stop journaled the run's end")
        #expect(end.outcome == .stopped && end.message == "the scheduler stopped before the run began", "\(end)")
        #expect(held.stampLines.isEmpty, "no process began")
    }

    /// Past the limit of starts the helper may hold, a run waits for its slot in the scheduler instead; a stop ends
    /// both unbegun.
    @Test func runsPastTheHeldStartsLimitWaitInTheScheduler() async throws {
        let held = try await HeldRun(every: 305, leadMilliseconds: 300_000, tasks: 2, heldStartsLimit: 1)
        defer { held.harness.remove() }
        #expect(await held.harness.wait { try held.harness.entries().startedRuns.count == 2 }, "both first slots are taken, a lead ahead")
        #expect(await held.harness.wait {
            let (handed, awaiting) = (await held.engine.runsHandedToTheSpawnServer, await held.engine.runsAwaitingSlot)
            return handed == 1 && awaiting == 1
        }, "one run with the helper, one awaiting its slot in the scheduler")
        await held.engine.stop()
        let ends = try held.harness.entries().finishedRuns
        #expect(ends.count == 2 && ends.allSatisfy { $0.message == "the scheduler stopped before the run began" }, "\(ends)")
        #expect(held.stampLines.isEmpty, "no process began")
    }
}

extension SchedulerEngine {
    /// Runs whose start is with the spawn server (or on its way there) and has not begun.
    var runsHandedToTheSpawnServer: Int { runs.values.filter { $0.work != nil && $0.handle.isAwaitingStart }.count }
}
