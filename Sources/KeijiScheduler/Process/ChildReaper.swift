import CSpawn
import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
    /// `waitpid` failed with this errno, so how the child ended is unknown. Never reported as a success.
    case waitFailed(Int32)
}

/// Collects the exit status of the children keiji spawned, and only those: one thread waits in `epoll` on
/// a pidfd per child and reaps each with `waitpid(pid)`. (A `waitpid(-1)` reaper would also steal the
/// children of other code in the process, such as `Foundation.Process`.)
final class ChildReaper: @unchecked Sendable {
    // @unchecked: `waiting` and `exited` are guarded by `lock`; `epoll` is only written in init.
    private let lock = NSLock()
    private var waiting: [pid_t: CheckedContinuation<ExitStatus, Never>] = [:]
    private var exited: [pid_t: ExitStatus] = [:]
    private let epoll: Int32

    static let shared = ChildReaper()

    private init() {
        epoll = keiji_child_watch_create()
        let thread = Thread { [self] in self.reap() }
        thread.name = "keiji-reaper"
        thread.start()
    }

    /// Starts watching a child (call right after a successful spawn).
    func adopt(_ pid: pid_t) {
        if keiji_child_watch_add(epoll, pid) != 0 {
            // Only if pidfds are unavailable (Linux < 5.3): reap this one on a thread of its own.
            Thread.detachNewThread { [self] in self.deliver(pid, status: Self.waitBlocking(pid)) }
        }
    }

    func status(of pid: pid_t) async -> ExitStatus {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let status = exited.removeValue(forKey: pid) {
                lock.unlock()
                continuation.resume(returning: status)
            } else {
                waiting[pid] = continuation
                lock.unlock()
            }
        }
    }

    private func reap() {
        var ready = [pid_t](repeating: 0, count: 64)
        while true {
            let count = keiji_child_watch_wait(epoll, &ready, Int32(ready.count))
            guard count > 0 else {
                if count < 0 && -count != EINTR { usleep(10_000) }  // a bad epoll fd: do not spin
                continue
            }
            for pid in ready.prefix(Int(count)) { deliver(pid, status: Self.waitBlocking(pid)) }
        }
    }

    private func deliver(_ pid: pid_t, status: ExitStatus) {
        lock.lock()
        if let continuation = waiting.removeValue(forKey: pid) {
            lock.unlock()
            continuation.resume(returning: status)
        } else {
            exited[pid] = status
            lock.unlock()
        }
    }

    /// Waits for `pid` and decodes its status. A failed `waitpid` (ECHILD: someone else reaped it) leaves
    /// `status` untouched, so it is reported as `.waitFailed`, never as an exit status it did not return.
    static func waitBlocking(_ pid: pid_t) -> ExitStatus {
        var status: Int32 = 0
        while true {
            if waitpid(pid, &status, 0) >= 0 { break }
            let error = errno
            if error != EINTR { return .waitFailed(error) }
        }
        return (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
    }
}
