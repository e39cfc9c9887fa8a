import Foundation

/// A serial executor that runs its jobs on one thread of its own, never on Swift's cooperative pool (one
/// thread per core: two here). An actor that makes blocking calls (libpq waits for its server on every
/// statement) uses it as its executor, so a slow database never holds up a firing.
///
/// The thread ends once the executor is released and its queue is empty.
final class DedicatedThreadExecutor: SerialExecutor {
    /// The queue the thread drains. Separate from the executor so that the thread does not keep it alive.
    private final class Queue: @unchecked Sendable {
        // @unchecked: `jobs` and `closed` are guarded by `condition`.
        let condition = NSCondition()
        var jobs: [UnownedJob] = []
        var closed = false
        /// Unowned, so the thread does not keep the executor alive; a pending job keeps its actor, and so the
        /// executor, alive.
        var executor: UnownedSerialExecutor?
    }

    private let queue = Queue()

    init(name: String) {
        let queue = self.queue
        let thread = Thread {
            while true {
                queue.condition.lock()
                while queue.jobs.isEmpty && !queue.closed { queue.condition.wait() }
                if queue.jobs.isEmpty {
                    queue.condition.unlock()
                    return
                }
                let jobs = queue.jobs
                let executor = queue.executor!
                queue.jobs.removeAll(keepingCapacity: true)
                queue.condition.unlock()
                for job in jobs { job.runSynchronously(on: executor) }
            }
        }
        thread.name = name
        queue.executor = asUnownedSerialExecutor()  // before the thread can see a job
        thread.start()
    }

    deinit {
        queue.condition.lock()
        queue.closed = true
        queue.condition.signal()
        queue.condition.unlock()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.condition.lock()
        queue.jobs.append(job)
        queue.condition.signal()
        queue.condition.unlock()
    }
}
