import Foundation
import Synchronization

/// Group commit with exactly one fdatasync per batch and one batch in flight, led by whoever finds the journal
/// idle (RocksDB's write thread, PostgreSQL's WAL insert): an append that finds no write in progress and no one
/// queued writes and syncs its frame on the caller's own thread, with no hand-off at all. Appends that arrive
/// while a write is in progress queue and form the next batch, which the writer thread commits; under load the
/// cost of a sync is shared by every producer waiting on it.
///
/// The writer thread (not the cooperative pool) runs the queued batches, control requests and timers,
/// because `fdatasync` blocks for hundreds of microseconds and a queued producer must not wait for a pool thread.
/// Any write or sync error fails the journal stop: the error is handed to every waiting and future caller,
/// and nothing is retried (after a failed fsync the kernel may have dropped the dirty pages).
final class GroupCommitter: @unchecked Sendable {
    // @unchecked: the fields under "guarded by `condition`" are only touched with it held; the SegmentWriter and
    // the fields under "owned by the leader" only by the thread that set `busy`, which is the lock hand-over.
    private let condition = NSCondition()

    // Guarded by `condition`.
    private var pending: [Request] = []
    private var state: State = .running
    /// A thread (a caller leading its own append, or the writer thread) is using the segment writer.
    private var busy = false
    /// How many appends the last synced batch answered: the next batch waits (briefly) for as many producers to
    /// come back, so batches do not settle into two alternating halves; above 1 it also turns callers away from
    /// leading their own appends, which would cut those batches into single records.
    private var lastBatchWaiters = 0
    /// While the writer thread gathers a batch, how many queued requests end the gathering (0 otherwise):
    /// producers wake it only when they complete the batch, not on every submit.
    private var gatherTarget = 0
    /// The monotonic time the writer thread sleeps until (`.max`: until signalled; 0: not asleep), so a caller
    /// that led an append knows whether its frame moved a timer earlier (an interval sync, the idle note).
    private var writerSleepsUntil: UInt64 = 0

    // Owned by the leader (whoever set `busy`).
    private let writer: SegmentWriter
    private var lastAppendNanoseconds: UInt64 = 0
    private var lastSyncNanoseconds: UInt64 = 0
    private var lastSyncDuration: UInt64 = 0

    private let options: JournalOptions
    private let shared: JournalSharedState
    /// Mirrors `pending.count` for the writer's lock-free spin before it sleeps.
    private let pendingCount = Atomic<Int>(0)

    enum Request {
        /// Records, when `append` was called (monotonic nanoseconds, for ``JournalCommitStatistics``), the caller.
        case append([[UInt8]], UInt64, UnsafeContinuation<UInt64, any Error>)
        case control(@Sendable (SegmentWriter) throws -> Void, UnsafeContinuation<Void, any Error>)
        case close(UnsafeContinuation<Void, any Error>)
    }

    private enum State {
        case running
        case failed(JournalError)
        case closed
    }

    init(writer: SegmentWriter, options: JournalOptions, shared: JournalSharedState) {
        self.writer = writer
        self.options = options
        self.shared = shared
        shared.publish(writer)
        let thread = Thread { [self] in self.run() }
        thread.name = "keiji-journal-writer"
        thread.start()
    }

    /// The leader's path: if no write is in progress, nothing is queued and the last batch had a single
    /// appender, writes and syncs `records` on the calling thread and returns the first LSN once durable (or
    /// written, in `interval`/`none` mode). Returns nil when the caller must queue with ``submit(_:)`` instead.
    func appendIfIdle(_ records: [[UInt8]], submitted: UInt64) throws -> UInt64? {
        condition.lock()
        guard case .running = state, !busy, pending.isEmpty, lastBatchWaiters <= 1 else {
            condition.unlock()
            return nil
        }
        busy = true
        condition.unlock()
        defer { stepDown() }
        let lsn: UInt64
        let statistics: JournalCommitStatistics?
        do {
            (lsn, statistics) = try commit(records[...], appends: 1)
        } catch {
            throw fail(error)
        }
        if let observer = options.observer, var statistics {
            statistics.appendSeconds = [Double(monotonicNanoseconds() &- submitted) / 1e9]
            observer(statistics)
        }
        rollIfDue()
        return lsn
    }

    /// Queues a request. Appends resume with the first record's LSN once their batch is durable (or written,
    /// in `interval`/`none` mode).
    func submit(_ request: Request) {
        condition.lock()
        let rejection: JournalError?
        switch (state, request) {
        case (.running, _), (.failed, .close):
            pending.append(request)
            pendingCount.store(pending.count, ordering: .relaxed)
            if pending.count == 1 || (gatherTarget > 0 && pending.count >= gatherTarget) { condition.signal() }
            rejection = nil
        case (.failed(let error), _):
            rejection = Self.stopped(error)
        case (.closed, _):
            rejection = JournalError(.closed, "the journal is closed")
        }
        condition.unlock()
        if let rejection { Self.reject(request, with: rejection) }
    }

    /// Ends a caller's lead. Wakes the writer thread if requests queued meanwhile or the frame just written
    /// moved one of its timers earlier; otherwise it sleeps on undisturbed.
    private func stepDown() {
        condition.lock()
        busy = false
        if writerSleepsUntil != 0, !pending.isEmpty || (nextTimerDeadline() ?? .max) < writerSleepsUntil {
            condition.signal()
        }
        condition.unlock()
    }

    // MARK: - Writer thread

    private func run() {
        condition.lock()
        while true {
            guard waitForWork() else {
                condition.unlock()
                return
            }
            busy = true
            gatherStragglers()
            let requests = pending
            pending.removeAll(keepingCapacity: true)
            pendingCount.store(0, ordering: .relaxed)
            let contended = lastBatchWaiters > 1
            condition.unlock()
            process(requests)
            runTimers()
            if contended { spinBriefly() }
            condition.lock()
            busy = false
        }
    }

    /// Sleeps until requests are queued or a timer is due, and no caller is leading an append. Returns false
    /// once the journal is closed. Called with the lock held.
    private func waitForWork() -> Bool {
        defer { writerSleepsUntil = 0 }
        while true {
            if busy {
                writerSleepsUntil = .max
                condition.wait()
                continue
            }
            if !pending.isEmpty { return true }
            if case .closed = state { return false }
            guard case .running = state, let deadline = nextTimerDeadline() else {
                writerSleepsUntil = .max
                condition.wait()
                continue
            }
            let now = monotonicNanoseconds()
            if deadline <= now { return true }
            writerSleepsUntil = deadline
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
    }

    /// Group commit's fill step (PostgreSQL's commit_delay, made adaptive): the producers answered by the last
    /// sync are about to append again. If fewer appends are waiting than that batch had, wait for the rest,
    /// but never longer than half the last sync took. A lone producer never waits here.
    /// Called with the lock held.
    private func gatherStragglers() {
        guard options.durability == .sync, lastBatchWaiters > 1, pending.count < lastBatchWaiters else { return }
        let deadline = monotonicNanoseconds() + min(lastSyncDuration / 2, 500_000)
        gatherTarget = lastBatchWaiters
        defer { gatherTarget = 0 }
        while pending.count < lastBatchWaiters {
            let now = monotonicNanoseconds()
            guard now < deadline else { return }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
    }

    /// Polls for new work for a few microseconds before sleeping on the condition: under load, the producers
    /// just answered append again at once, and then cost no futex wake-up.
    private func spinBriefly() {
        guard pendingCount.load(ordering: .relaxed) == 0 else { return }
        let until = monotonicNanoseconds() + 20_000
        while pendingCount.load(ordering: .relaxed) == 0, monotonicNanoseconds() < until {}
    }

    /// Writes `records` as the next batch and syncs it as the durability asks. Returns the first record's LSN
    /// and, when an observer is set, the batch's figures (without the append latencies). Leader only.
    private func commit(_ records: ArraySlice<[UInt8]>, appends: Int) throws -> (UInt64, JournalCommitStatistics?) {
        let offsetBefore = writer.offset
        let lsn = try writer.append(records)
        lastAppendNanoseconds = monotonicNanoseconds()
        var synced = false
        do {
            switch options.durability {
            case .sync:
                try syncNow()
                synced = true
                lastSyncDuration = lastSyncNanoseconds - lastAppendNanoseconds
                condition.lock()
                lastBatchWaiters = appends
                condition.unlock()
            case .interval(let milliseconds):
                if lastAppendNanoseconds - lastSyncNanoseconds >= UInt64(milliseconds) * 1_000_000 {
                    try syncNow()
                    synced = true
                }
            case .none:
                break
            }
        } catch {
            // This batch is answered with the error: its frames go, or the kernel could still write them back and
            // the next open replay appends reported failed. (Earlier batches an interval sync had not reached were
            // acknowledged: they stay.)
            throw writer.takeBack(to: offsetBefore, after: error)
        }
        shared.publish(writer)
        guard options.observer != nil else { return (lsn, nil) }
        var statistics = JournalCommitStatistics()
        statistics.records = records.count
        statistics.recordBytes = records.reduce(0) { $0 + $1.count }
        statistics.bytesWritten = writer.offset - offsetBefore
        statistics.syncSeconds = synced ? Double(lastSyncNanoseconds - lastAppendNanoseconds) / 1e9 : nil
        return (lsn, statistics)
    }

    /// After a batch's appends are answered: a failed roll fails the journal for later callers only. Leader only.
    private func rollIfDue() {
        guard writer.isDueForRoll(now: options.now()) else { return }
        do {
            try writer.roll()
            shared.publish(writer)
        } catch {
            _ = fail(error)
        }
    }

    private func process(_ requests: [Request]) {
        var waiters: [(count: Int, submitted: UInt64, continuation: UnsafeContinuation<UInt64, any Error>)] = []
        var records: [[UInt8]] = []

        func flush() {
            guard !waiters.isEmpty else { return }
            defer {
                waiters.removeAll(keepingCapacity: true)
                records.removeAll(keepingCapacity: true)
            }
            do {
                let (first, statistics) = try commit(records[...], appends: waiters.count)
                var lsn = first
                let acknowledged = statistics == nil ? 0 : monotonicNanoseconds()
                for waiter in waiters {
                    waiter.continuation.resume(returning: lsn)
                    lsn += UInt64(waiter.count)
                }
                if let observer = options.observer, var statistics {
                    // After the answers: counting never delays an acknowledgement.
                    statistics.appendSeconds = waiters.map { Double(acknowledged &- $0.submitted) / 1e9 }
                    observer(statistics)
                }
            } catch {
                let failure = fail(error)
                for waiter in waiters { waiter.continuation.resume(throwing: failure) }
                return
            }
            rollIfDue()
        }
        for request in requests {
            switch (currentState(), request) {
            case (.running, .append(let batch, let submitted, let continuation)):
                waiters.append((batch.count, submitted, continuation))
                records.append(contentsOf: batch)
            case (.running, .control(let body, let continuation)):
                flush()
                switch currentState() {
                case .running: break
                case .failed(let error):
                    Self.reject(request, with: Self.stopped(error))
                    continue
                case .closed:
                    Self.reject(request, with: JournalError(.closed, "the journal is closed"))
                    continue
                }
                do {
                    try body(writer)
                    shared.publish(writer)
                    continuation.resume()
                } catch let error as JournalError where error.code == .invalidArgument || error.code == .notFound {
                    continuation.resume(throwing: error)
                } catch {
                    continuation.resume(throwing: fail(error))
                }
            case (.running, .close(let continuation)):
                flush()
                var failure: JournalError?
                if case .running = currentState() {
                    do { try writer.close() } catch { failure = fail(error) }
                }
                writer.abandon()  // a no-op when close() already released it: the descriptor is closed once
                shared.publish(writer)
                setState(.closed)
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
            case (.failed, .close(let continuation)):
                writer.abandon()
                setState(.closed)
                continuation.resume()
            case (.failed(let error), _):
                Self.reject(request, with: Self.stopped(error))
            case (.closed, _):
                Self.reject(request, with: JournalError(.closed, "the journal is closed"))
            }
        }
        flush()
    }

    private func syncNow() throws {
        try writer.sync()
        lastSyncNanoseconds = monotonicNanoseconds()
    }

    /// Interval syncs, the idle note, and rolls by age.
    private func runTimers() {
        guard case .running = currentState() else { return }
        let now = monotonicNanoseconds()
        do {
            if case .interval(let milliseconds) = options.durability, writer.hasUnsyncedRecords,
                now - lastSyncNanoseconds >= UInt64(milliseconds) * 1_000_000
            {
                try syncNow()
                if let observer = options.observer {
                    var statistics = JournalCommitStatistics()
                    statistics.syncSeconds = Double(lastSyncNanoseconds &- now) / 1e9
                    observer(statistics)
                }
            }
            if let delay = options.idleNoteDelay, writer.lastFrameUnvouched,
                options.durability != .none, now - lastAppendNanoseconds >= delay.nanoseconds
            {
                try writer.writeNote(.idle)
                lastSyncNanoseconds = now
            }
            if writer.isDueForRoll(now: options.now()) { try writer.roll() }
            shared.publish(writer)
        } catch {
            _ = fail(error)
        }
    }

    /// The earliest monotonic time a timer needs the thread awake. Called with the lock held.
    private func nextTimerDeadline() -> UInt64? {
        var deadline: UInt64?
        func consider(_ t: UInt64) { deadline = min(deadline ?? t, t) }
        if case .interval(let milliseconds) = options.durability, writer.hasUnsyncedRecords {
            consider(lastSyncNanoseconds + UInt64(milliseconds) * 1_000_000)
        }
        if let delay = options.idleNoteDelay, writer.lastFrameUnvouched, options.durability != .none {
            consider(lastAppendNanoseconds + delay.nanoseconds)
        }
        if let rollAt = writer.rollDeadline() {
            let wall = options.now()
            consider(monotonicNanoseconds() + (rollAt > wall ? rollAt - wall : 0))
        }
        return deadline
    }

    private func currentState() -> State {
        condition.lock()
        defer { condition.unlock() }
        return state
    }

    private func setState(_ new: State) {
        condition.lock()
        state = new
        condition.unlock()
    }

    /// Enters the failed state (once) and returns the error to hand to callers.
    private func fail(_ error: any Error) -> JournalError {
        let journalError = error as? JournalError ?? JournalError(.io, "\(error)")
        condition.lock()
        if case .running = state { state = .failed(journalError) }
        condition.unlock()
        return Self.stopped(journalError)
    }

    /// The error every call gets once the journal has failed: the failure's own words (which file, why), with the
    /// code that says it must be reopened.
    private static func stopped(_ cause: JournalError) -> JournalError {
        if cause.code == .failed { return cause }
        return JournalError(.failed, cause.message, errno: cause.errno)
    }

    private static func reject(_ request: Request, with error: JournalError) {
        switch request {
        case .append(_, _, let continuation): continuation.resume(throwing: error)
        case .control(_, let continuation): continuation.resume(throwing: error)
        case .close(let continuation): continuation.resume(throwing: error)
        }
    }
}
