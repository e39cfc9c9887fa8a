import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

extension SchedulerEngine {
    // MARK: - Task loops

    /// (Re)starts the child task that fires `name` on its schedule. Called at start and after every command
    /// that changes the task; the previous loop is cancelled (runs in progress are not affected).
    func startLoop(_ name: TaskName) {
        loops[name]?.cancel()
        loops[name] = nil
        guard phase == .running || phase == .created, let task = state.tasks[name], !task.isDisabled, !task.isError else { return }
        loops[name] = Task { [weak self] in await self?.runLoop(name) }
    }

    /// What a task's loop does next. Computed synchronously so that a sleeping loop holds two integers
    /// across its suspension, not a copy of the task (10,000 sleeping loops must stay small).
    private enum NextFiring {
        case manual
        case slot(Int64, fireAtMs: Int64)
        case done
    }

    private func nextFiring(_ name: TaskName) -> NextFiring {
        guard let task = state.tasks[name], !task.isDisabled, !task.isError else { return .done }
        if task.pendingTriggers > 0 { return .manual }
        let calculator = ScheduleCalculator(spec: task.definition.schedule, defaultTimeZone: timeZone, anchor: task.anchor)
        let cursor = max(firedSlots[name] ?? Int64.min, task.lastSlot ?? task.anchor)
        guard let slot = calculator.nextSlot(after: cursor) else { return .done }  // a one-shot that has fired
        return .slot(slot, fireAtMs: task.fireTimeMilliseconds(slot: slot, calculator: calculator))
    }

    private func runLoop(_ name: TaskName) async {
        while !Task.isCancelled, phase == .running {
            let slot: Int64
            let fireAtMs: Int64
            switch nextFiring(name) {
            case .done: return
            case .manual:
                if state.tasks[name]?.definition.policy.overlap == .skip, hasRuns(name) {
                    // A skip task never runs twice at once: a queued manual run waits for the current one.
                    // (`--run` refuses while one runs; this covers a slot that started during the append.)
                    do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
                    continue
                }
                // Wait for this run.started to be applied (it consumes the trigger) before looking again.
                guard let lsn = await fire(name, slot: nil, fireAtMs: WallClock.nowMilliseconds(), trigger: .manual) else { return }
                await waitUntilApplied(lsn)
                continue
            case .slot(let next, let at):
                slot = next
                fireAtMs = at
            }
            do { try await WallClock.sleep(untilMilliseconds: fireAtMs) } catch { return }
            guard !Task.isCancelled, phase == .running else { return }
            if configuration.recordLateness { lateness.wake.append(WallClock.nowMicroseconds() - TimeArithmetic.product(fireAtMs, 1000)) }
            firedSlots[name] = slot
            await fire(name, slot: slot, fireAtMs: fireAtMs, trigger: .schedule)
        }
    }

    // MARK: - Firing

    /// Starts a run for `slot` unless the overlap policy says to skip it (manual runs always start).
    /// Returns the LSN of the `run.started` or `run.missed` record once it is durable; the process is started
    /// in the run's own child task.
    @discardableResult
    func fire(_ name: TaskName, slot: Int64?, fireAtMs: Int64, trigger: RunTrigger, attempt: Int = 1, interruptions: Int? = nil) async -> UInt64? {
        guard let task = state.tasks[name] else { return nil }
        // Checked here, at the last moment before run.started, not only when the run was planned: a catch-up,
        // re-run or retry queued earlier must not start for a task disabled or put in error since.
        if trigger != .manual, task.isDisabled || task.isError { return nil }
        if trigger != .manual, task.definition.policy.overlap == .skip, hasRuns(name) {
            guard let slot else { return nil }
            return try? await record(.runMissed(RunMissed(task: name, slot: slot, count: 1, reason: .overlap)))
        }
        let runID = Self.newRunID()
        let handle = RunHandle()
        // Registered before the await: a stop or shutdown during the append finds it.
        registerRun(runID, LiveRun(task: name, handle: handle, work: nil))
        guard let lsn = try? await record(.runStarted(RunStart(runID: runID, task: name, slot: slot, attempt: attempt, trigger: trigger,
                                                           interruptions: interruptions))) else {
            unregisterRun(runID)
            return nil
        }
        guard phase == .running else {
            // The scheduler began stopping while run.started was being journaled: never spawn after that.
            _ = try? await record(.runFinished(RunEnd(runID: runID, task: name, outcome: .stopped, exitCode: nil, signal: nil, durationMs: 0,
                                                      latenessMs: nil, final: true, message: "the scheduler stopped before the run began")))
            unregisterRun(runID)
            return lsn
        }
        if configuration.recordLateness { lateness.start.append(WallClock.nowMicroseconds() - TimeArithmetic.product(fireAtMs, 1000)) }
        let definition = task.definition
        runs[runID]?.work = Task { [weak self] in
            await self?.execute(runID: runID, definition: definition, slot: slot, fireAtMs: fireAtMs, attempt: attempt,
                                interruptions: interruptions, handle: handle)
        }
        return lsn
    }

    private func execute(runID: String, definition: TaskDefinition, slot: Int64?, fireAtMs: Int64, attempt: Int, interruptions: Int?,
                         handle: RunHandle) async {
        let name = definition.name
        let latenessMs = max(0, WallClock.nowMilliseconds() - fireAtMs)
        let result: RunExecutor.Result
        if configuration.spawnProcesses {
            let taskLog = LogFile(task: name, workspace: configuration.workspace, settings: configuration.settings)
            // Rotated only when this is the task's one run: no other writer has the log open.
            guard let fd = try? taskLogs.checkOut(taskLog, task: name, mayRotate: (activeRunCounts[name] ?? 0) <= 1) else {
                await finish(runID: runID, name: name, result: .init(outcome: .spawnFailed, status: nil, durationMs: 0, message: "cannot open the task log"),
                             latenessMs: latenessMs, slot: slot, attempt: attempt, interruptions: interruptions, definition: definition)
                return
            }
            LogFile.write(fd, "\(ISO8601.string(fromMilliseconds: WallClock.nowMilliseconds())) [keiji] run \(runID) started (attempt \(attempt)\(slot.map { ", slot \(ISO8601.string(fromSeconds: $0))" } ?? ""))\n")
            let errorDirectory = configuration.workspace.runErrorDirectory
            let errorFile = (try? FileSystem.createDirectory(errorDirectory)) != nil ? errorDirectory + "/" + runID + ".error" : nil
            result = await RunExecutor(definition: definition, runID: runID, slot: slot, logDescriptor: fd,
                                       environment: environments.block(forTaskDirectory: definition.directory), errorFile: errorFile).run(handle: handle)
            LogFile.write(fd, "\(ISO8601.string(fromMilliseconds: WallClock.nowMilliseconds())) [keiji] run \(runID) \(result.outcome.rawValue)\(result.message.map { ": \($0)" } ?? "") after \(result.durationMs) ms\n")
            taskLogs.checkIn(fd)
        } else {
            result = .init(outcome: .succeeded, status: .exited(0), durationMs: 0, message: nil)
        }
        await finish(runID: runID, name: name, result: result, latenessMs: latenessMs, slot: slot, attempt: attempt, interruptions: interruptions, definition: definition)
    }

    private func finish(runID: String, name: TaskName, result: RunExecutor.Result, latenessMs: Int64, slot: Int64?, attempt: Int,
                        interruptions: Int?, definition: TaskDefinition) async {
        let willRetry = result.outcome.isFailure && attempt <= definition.policy.retries && phase == .running
        var exitCode: Int32?
        var signal: Int32?
        switch result.status {
        case .exited(let code): exitCode = code
        case .signaled(let s): signal = s
        case .waitFailed, .lost, nil: break
        }
        _ = try? await record(.runFinished(RunEnd(runID: runID, task: name, outcome: result.outcome, exitCode: exitCode, signal: signal,
                                                  durationMs: result.durationMs, latenessMs: latenessMs, final: !willRetry, message: result.message)))
        unregisterRun(runID)
        if willRetry {
            let backoff = definition.policy.retryDelaySeconds(afterAttempt: attempt)
            try? await Task.sleep(for: .milliseconds(TimeArithmetic.milliseconds(fromSeconds: backoff)))
            guard phase == .running, let task = state.tasks[name], !task.isDisabled else { return }
            // The retry carries the slot's interruption count: a restart during it still counts toward giving up.
            await fire(name, slot: slot, fireAtMs: WallClock.nowMilliseconds(), trigger: .retry, attempt: attempt + 1, interruptions: interruptions)
        } else if result.outcome.isFailure, !definition.policy.continueOnError {
            // The task now waits for `keiji task --resolve`.
            loops[name]?.cancel()
            loops[name] = nil
        }
    }

    static func newRunID() -> String {
        let uuid = UUID().uuidString.lowercased()
        return String(uuid.prefix(8)) + String(uuid.dropFirst(9).prefix(4))
    }
}
