import Foundation

/// A thread of the engine's own for long CPU work off the firing path: the query view's flushes (thousands of
/// rows every 200 ms under load) and the checkpoint's encoding. On Swift's cooperative pool, which has one thread
/// per core (two on a small machine), such a job holds a pool thread for milliseconds at a time, and the timer
/// loop, the bus and every run's `execute` queue behind it: that was the tail of keiji's firing lateness. On a
/// thread of its own the kernel time-slices it against them instead.
///
/// A thread made with `yieldsToFiring` (the engine's, for the view and the checkpoint) runs at nice +10: that work
/// can wait a few milliseconds, a firing cannot, so on a busy machine the kernel gives the timer loop and the
/// journal's writer the core first. Threads on the firing path itself (the cluster's claims) keep the normal one.
///
/// It is a serial executor (actors such as ``ViewWriter`` run on it) and runs plain closures (``run(_:)``), in
/// the order they were handed over. The thread ends after ``stop()`` once the work queued before it is done.
final class BackgroundThread: SerialExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [@Sendable () -> Void] = []
    private var stopping = false

    init(name: String, yieldsToFiring: Bool = false) {
        let thread = Thread { [self] in
            // Linux keeps the nice value per thread: `who` 0 is the calling thread, not the whole process.
            if yieldsToFiring { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10) }
            loop()
        }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        submit { job.runSynchronously(on: executor) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Runs `body` on this thread and suspends (without holding a pool thread) until it has returned.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Lets the thread end once the work queued so far is done.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func submit(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(work)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            let done = batch.isEmpty && stopping
            condition.unlock()
            if done { return }
            for work in batch { work() }
        }
    }
}
