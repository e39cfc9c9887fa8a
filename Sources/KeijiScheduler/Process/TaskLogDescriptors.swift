import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Each task's log, kept open (`O_APPEND`) from one run to the next: a run costs one `stat` of the log
/// instead of creating its folders, opening and closing it. The descriptor is reopened when the file is no
/// longer the one it points to (rotated, or removed by `keiji task --delete`), and the log is rotated only
/// when no other run of the task writes to it. At most ``capacity`` idle descriptors stay open; the least
/// recently used are closed first.
final class TaskLogDescriptors: Sendable {
    private struct Open {
        var fd: Int32
        var device: UInt64
        var inode: UInt64
        /// Runs writing through it now; it is closed only at zero.
        var users: Int
        var lastUse: UInt64
        /// No longer the task's current descriptor: closed when its last user checks it in.
        var retired: Bool
    }

    private struct State {
        var current: [TaskName: Int32] = [:]
        var open: [Int32: Open] = [:]
        var clock: UInt64 = 0
    }

    let capacity: Int
    /// The lowest descriptor number a log may not get: the limit less ``DescriptorLimit/reserve``. Descriptors in
    /// use are not evicted, so a thousand runs going at once hold a thousand; past the ceiling a run is refused
    /// rather than the process's last descriptors taken (libdispatch kills a process that has none left).
    /// Atomic so that a test can lower it on a table holding descriptors.
    let ceiling: Atomic<Int>
    private let state = Mutex(State())

    init(capacity: Int = TaskLogDescriptors.defaultCapacity(), ceiling: Int = DescriptorLimit.ceiling) {
        self.capacity = capacity
        self.ceiling = Atomic(ceiling)
    }

    /// A quarter of the process's descriptor limit (`RLIMIT_NOFILE`), between 64 and 4,096: 256 at the common
    /// 1,024. Where the limit allows, a thousand tasks that each run every second keep their logs open; with
    /// fewer descriptors than tasks, the least recently used log is always the next to be written, and every
    /// run opened its log again.
    static func defaultCapacity() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        return Int(min(max(limit.rlim_cur / 4, 64), 4096))
    }

    /// The number of descriptors open now (for tests).
    var openCount: Int { state.withLock { $0.open.count } }

    /// A descriptor for `task`'s log, rotating it first when `mayRotate` (no other run of the task is going)
    /// and it has reached its size limit. Give it back with ``checkIn(_:)``. A rotation that fails is told to `warn`
    /// and the run goes on writing to the log (it failed as "could not start" when the disk was too full to compress
    /// the old segment). Throws when the log cannot be opened, with the file and the reason.
    func checkOut(_ log: LogFile, task: TaskName, mayRotate: Bool, warn: (String) -> Void = { _ in }) throws -> Int32 {
        var info = stat()
        let exists = stat(log.activePath, &info) == 0
        let needsRotation = exists && mayRotate && log.rotate && Int(info.st_size) >= log.maxSize
        if exists, !needsRotation {
            let reused = state.withLock { s -> Int32? in
                guard let fd = s.current[task], var entry = s.open[fd], entry.device == UInt64(info.st_dev), entry.inode == UInt64(info.st_ino)
                else { return nil }
                s.clock += 1
                entry.users += 1
                entry.lastUse = s.clock
                s.open[fd] = entry
                return fd
            }
            if let reused { return reused }
        }
        // A new descriptor: first retire the old one (it must not be written to while the file is rotated).
        let idle = state.withLock { s -> Int32? in retire(task, in: &s) }
        if let idle { close(idle) }
        if needsRotation {
            do { try log.rotateIfNeeded() } catch { warn("\(error)") }
        }
        var fd = try log.openForAppend()
        // The kernel gives the lowest free number: one at the ceiling means every descriptor below it is taken.
        let ceiling = self.ceiling.load(ordering: .relaxed)
        if Int(fd) >= ceiling {
            // The idle logs kept open go first: a run is refused only when every descriptor is in use.
            close(fd)
            state.withLock { s in detachAllIdle(&s) }.forEach { close($0) }
            fd = try log.openForAppend()
            if Int(fd) >= ceiling {
                close(fd)
                throw KeijiError(.io, DescriptorLimit.atCeiling(ceiling) + ": \(task)'s log was not opened")
            }
        }
        var opened = stat()
        fstat(fd, &opened)
        let evicted = state.withLock { s -> [Int32] in
            s.clock += 1
            let previous = retire(task, in: &s)  // another run of the task opened one meanwhile
            s.current[task] = fd
            s.open[fd] = Open(fd: fd, device: UInt64(opened.st_dev), inode: UInt64(opened.st_ino), users: 1, lastUse: s.clock, retired: false)
            return (previous.map { [$0] } ?? []) + evict(&s)
        }
        evicted.forEach { close($0) }
        return fd
    }

    /// Gives back a descriptor from ``checkOut(_:task:mayRotate:)``.
    func checkIn(_ fd: Int32) {
        let close_ = state.withLock { s -> Bool in
            guard var entry = s.open[fd] else { return false }
            entry.users -= 1
            if entry.users == 0 && entry.retired {
                s.open[fd] = nil
                return true
            }
            s.open[fd] = entry
            return false
        }
        if close_ { close(fd) }
    }

    /// Closes the task's descriptor (now, or when its last run ends): its log is about to be removed.
    func forget(_ task: TaskName) {
        let idle = state.withLock { s -> Int32? in retire(task, in: &s) }
        if let idle { close(idle) }
    }

    /// Detaches `task`'s current descriptor; returns it if nothing uses it (the caller closes it).
    private func retire(_ task: TaskName, in s: inout State) -> Int32? {
        guard let fd = s.current.removeValue(forKey: task), var entry = s.open[fd] else { return nil }
        if entry.users == 0 {
            s.open[fd] = nil
            return fd
        }
        entry.retired = true
        s.open[fd] = entry
        return nil
    }

    /// Over capacity: the least recently used idle descriptors, down to three quarters of the capacity (so
    /// the sort is paid once per many opens), removed from the state; the caller closes them.
    /// Detaches every idle descriptor; returns them for the caller to close.
    private func detachAllIdle(_ s: inout State) -> [Int32] {
        let idle = s.current.filter { s.open[$0.value]?.users == 0 }
        for (task, fd) in idle {
            s.current[task] = nil
            s.open[fd] = nil
        }
        return Array(idle.values)
    }

    private func evict(_ s: inout State) -> [Int32] {
        guard s.current.count > capacity else { return [] }
        let idle = s.current.compactMap { task, fd in s.open[fd].flatMap { $0.users == 0 ? (task, $0) : nil } }
            .sorted { $0.1.lastUse < $1.1.lastUse }
        var closed: [Int32] = []
        for (task, entry) in idle.prefix(s.current.count - capacity * 3 / 4) {
            s.current[task] = nil
            s.open[entry.fd] = nil
            closed.append(entry.fd)
        }
        return closed
    }
}
