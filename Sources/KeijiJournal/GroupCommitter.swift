import Foundation
import Synchronization

/// The journal's single writer thread: group commit with exactly one fdatasync per batch and one batch in
/// flight. Appends that arrive while a sync runs wait and form the next batch, so under load the cost of a
/// sync is shared by every producer waiting on it.
///
/// A dedicated thread (not the cooperative pool) because `fdatasync` blocks for hundreds of microseconds.
/// Any write or sync error fails the journal stop: the error is handed to every waiting and future caller,
/// and nothing is retried (after a failed fsync the kernel may have dropped the dirty pages).
final class GroupCommitter: @unchecked Sendable {
    // @unchecked: every mutable field below is guarded by `condition`, except `writer`, which only the
    // writer thread touches after init.
    private let condition = NSCondition()
    private var pending: [Request] = []
    private var state: State = .running
    private let writer: SegmentWriter
    private let options: JournalOptions
    private let shared: JournalSharedState

    private var lastAppendNanoseconds: UInt64 = 0
    private var lastSyncNanoseconds: UInt64 = 0
    /// How many appends the last synced batch answered, and how long its sync took: the next batch waits
    /// (briefly) for as many producers to come back, so batches do not settle into two alternating halves.
    private var lastBatchWaiters = 0
    private var lastSyncDuration: UInt64 = 0
    /// Set while the writer gathers a batch; producers then signal on every submit, not just the first.
    private var gathering = false
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

    /// Queues a request. Appends resume with the first record's LSN once their batch is durable (or written,
    /// in `interval`/`none` mode).
    func submit(_ request: Request) {
        condition.lock()
        let rejection: JournalError?
        switch (state, request) {
        case (.running, _), (.failed, .close):
            pending.append(request)
            pendingCount.store(pending.count, ordering: .relaxed)
            if pending.count == 1 || gathering { condition.signal() }
            rejection = nil
        case (.failed(let error), _):
            rejection = Self.stopped(error)
        case (.closed, _):
            rejection = JournalError(.closed, "the journal is closed")
        }
        condition.unlock()
        if let rejection { Self.reject(request, with: rejection) }
    }

    // MARK: - Writer thread

    private func run() {
        while true {
            spinBriefly()
            condition.lock()
            while pending.isEmpty {
                if case .closed = state {
                    condition.unlock()
                    return
                }
                if case .running = state, let deadline = nextTimerDeadline() {
                    let now = monotonicNanoseconds()
                    if deadline <= now { break }
                    if !condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9)) { break }
                } else {
                    condition.wait()
                }
            }
            gatherStragglers()
            let requests = pending
            pending.removeAll(keepingCapacity: true)
            pendingCount.store(0, ordering: .relaxed)
            condition.unlock()
            process(requests)
            runTimers()
        }
    }

    /// Group commit's fill step (PostgreSQL's commit_delay, made adaptive): the producers answered by the last
    /// sync are about to append again. If fewer appends are waiting than that batch had, wait for the rest,
    /// but never longer than half the last sync took. A lone producer never waits here.
    /// Called with the lock held.
    private func gatherStragglers() {
        guard options.durability == .sync, lastBatchWaiters > 1, pending.count < lastBatchWaiters else { return }
        let deadline = monotonicNanoseconds() + min(lastSyncDuration / 2, 500_000)
        gathering = true
        defer { gathering = false }
        while pending.count < lastBatchWaiters {
            let now = monotonicNanoseconds()
            guard now < deadline else { return }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
    }

    /// Polls for new work for a few microseconds before sleeping on the condition: a producer that appends
    /// again right after its answer (the common case) then costs no futex wake-up.
    private func spinBriefly() {
        guard pendingCount.load(ordering: .relaxed) == 0 else { return }
        let until = monotonicNanoseconds() + 20_000
        while pendingCount.load(ordering: .relaxed) == 0, monotonicNanoseconds() < until {}
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
                let offsetBefore = writer.offset
                var lsn = try writer.append(records[...])
                lastAppendNanoseconds = monotonicNanoseconds()
                var synced = false
                switch options.durability {
                case .sync:
                    try syncNow()
                    synced = true
                    lastSyncDuration = lastSyncNanoseconds - lastAppendNanoseconds
                    lastBatchWaiters = waiters.count
                case .interval(let milliseconds):
                    if lastAppendNanoseconds - lastSyncNanoseconds >= UInt64(milliseconds) * 1_000_000 {
                        try syncNow()
                        synced = true
                    }
                case .none:
                    break
                }
                shared.publish(writer)
                let acknowledged = options.observer == nil ? 0 : monotonicNanoseconds()
                for waiter in waiters {
                    waiter.continuation.resume(returning: lsn)
                    lsn += UInt64(waiter.count)
                }
                if let observer = options.observer {
                    // After the answers: counting never delays an acknowledgement.
                    var statistics = JournalCommitStatistics()
                    statistics.records = records.count
                    statistics.recordBytes = records.reduce(0) { $0 + $1.count }
                    statistics.bytesWritten = writer.offset - offsetBefore
                    statistics.syncSeconds = synced ? Double(lastSyncNanoseconds - lastAppendNanoseconds) / 1e9 : nil
                    statistics.appendSeconds = waiters.map { Double(acknowledged &- $0.submitted) / 1e9 }
                    observer(statistics)
                }
            } catch {
                let failure = fail(error)
                for waiter in waiters { waiter.continuation.resume(throwing: failure) }
                return
            }
            // After the waiters are answered: a failed roll fails the journal for later callers only.
            if writer.isDueForRoll(now: options.now()) {
                do {
                    try writer.roll()
                    shared.publish(writer)
                } catch {
                    _ = fail(error)
                }
            }
        }

        for request in requests {
            switch (currentState(), request) {
            case (.running, .append(let batch, let submitted, let continuation)):
                waiters.append((batch.count, submitted, continuation))
                records.append(contentsOf: batch)
            case (.running, .control(let body, let continuation)):
                flush()
                guard case .running = currentState() else {
                    Self.reject(request, with: JournalError(.failed, "the journal stopped after an I/O error"))
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

    private static func stopped(_ cause: JournalError) -> JournalError {
        if cause.code == .failed { return cause }
        return JournalError(.failed, "the journal stopped after an I/O error and must be reopened: \(cause.description)", errno: cause.errno)
    }

    private static func reject(_ request: Request, with error: JournalError) {
        switch request {
        case .append(_, _, let continuation): continuation.resume(throwing: error)
        case .control(_, let continuation): continuation.resume(throwing: error)
        case .close(let continuation): continuation.resume(throwing: error)
        }
    }
}
