import Foundation

/// A writer thread for one connection: async code hands it lines and moves on, and the blocking `send`
/// happens on this thread instead of the cooperative pool (see ``DedicatedThread``). The scheduler's link
/// uses it so replies finishing concurrently can be written in any order without awaiting the socket.
final class LineSender: @unchecked Sendable {
    // @unchecked: `queue` and `finished` are only touched with `condition` locked.
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var finished = false

    init(_ connection: LineConnection, name: String) {
        DedicatedThread.start(name) { [self] in
            while let batch = nextBatch() {
                for line in batch where !connection.write(line) {
                    // The connection is gone; its reader will notice too. Drop the rest.
                    finish()
                    return
                }
            }
        }
    }

    /// Queues a line; dropped if the sender has finished.
    func send(_ line: [UInt8]) {
        condition.withLock {
            guard !finished else { return }
            queue.append(line)
            condition.signal()
        }
    }

    /// Stops the thread once queued lines are written (or dropped, if the connection is gone).
    func finish() {
        condition.withLock {
            finished = true
            condition.signal()
        }
    }

    private func nextBatch() -> [[UInt8]]? {
        condition.withLock {
            while queue.isEmpty && !finished { condition.wait() }
            if queue.isEmpty { return nil }
            defer { queue.removeAll() }
            return queue
        }
    }
}
