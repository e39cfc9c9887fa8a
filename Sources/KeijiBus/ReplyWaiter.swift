import Dispatch
import Synchronization

/// A value one thread waits for and another gives, at most once: a forwarded request waiting on a push connection's
/// thread for the scheduler's reply, or an HTTP connection's thread for its route's answer.
///
/// On the bus, exactly one party resolves a waiter: whoever removes it from the server's pending table (the scheduler
/// reader on a reply, the reader's cleanup on disconnect, the forwarding thread on a failed write or a
/// timeout). That single-remover rule is what guarantees every request gets exactly one reply.
package final class ReplyWaiter<Value: Sendable>: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let reply = Mutex<Value?>(nil)

    package init() {}

    package func resolve(_ value: Value) {
        reply.withLock { $0 = value }
        semaphore.signal()
    }

    /// The reply, or `nil` if `timeout` passed first (`nil` timeout: wait until resolved).
    package func wait(timeout: Duration?) -> Value? {
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
            guard semaphore.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        } else {
            semaphore.wait()
        }
        return reply.withLock { $0 }
    }
}
