import Dispatch
import Synchronization

/// One forwarded request waiting on a push connection's thread for the scheduler's reply.
///
/// Exactly one party resolves a waiter: whoever removes it from the server's pending table (the scheduler
/// reader on a reply, the reader's cleanup on disconnect, the forwarding thread on a failed write or a
/// timeout). That single-remover rule is what guarantees every request gets exactly one reply.
final class ReplyWaiter: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let reply = Mutex<BusReply?>(nil)

    func resolve(_ value: BusReply) {
        reply.withLock { $0 = value }
        semaphore.signal()
    }

    /// The reply, or `nil` if `timeout` passed first (`nil` timeout: wait until resolved).
    func wait(timeout: Duration?) -> BusReply? {
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
