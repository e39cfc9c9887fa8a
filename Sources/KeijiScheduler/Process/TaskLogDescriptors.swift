import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Each task's log, kept open (`O_APPEND`) from one run to the next: a run costs one `stat` of the log
/// instead of creating its folders, opening and closing it. The descriptor is reopened when the file is no
/// longer the one it points to (rotated, or removed by `keiji task --delete`). The log is rotated at its size when
/// no other run of the task writes to it, and at ``busyRotationFactor`` times its size when others do: their
/// descriptors then write into the rolled file, which is compressed once the last of them is checked in (a run whose
/// leftover processes still write through the spawn helper is checked in when they stop). At most
/// ``capacity`` idle descriptors stay open; the least recently used are closed first.
final class TaskLogDescriptors: Sendable {
    private struct Open {
        var fd: Int32
        var task: TaskName
        var log: LogFile
        var device: UInt64
        var inode: UInt64
        /// Runs writing through it now; it is closed only at zero.
        var users: Int
        var lastUse: UInt64
        /// No longer the task's current descriptor: closed when its last user checks it in.
        var retired: Bool
        /// Its file was rotated while runs wrote to it: left plain, and compressed when it is closed.
        var awaitsSeal = false
    }

    private struct State {
        var current: [TaskName: Int32] = [:]
        var open: [Int32: Open] = [:]
        var clock: UInt64 = 0
    }

    /// How many times `LOG_MAX_SIZE` a task's log may reach before it is rotated under runs still writing it. Runs of
    /// a task that overlap without pause left it never rotated; at once at the size, a task that overlaps now and
    /// then would often split a run's lines across two segments.
    static let busyRotationFactor = 2

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

    /// A descriptor for `task`'s log, rotating it first when it has reached its size limit, or ``busyRotationFactor``
    /// times that when `othersWriting` (other runs of the task are going). Give it back with ``checkIn(_:)``. A rotation
    /// that fails is told to `warn` and the run goes on writing to the log (it failed as "could not start" when the disk
    /// was too full to compress the old segment). Throws when the log cannot be opened, with the file and the reason.
    func checkOut(_ log: LogFile, task: TaskName, othersWriting: Bool, warn: (String) -> Void = { _ in }) throws -> Int32 {
        var info = stat()
        let exists = stat(log.activePath, &info) == 0
        let limit = othersWriting ? log.maxSize * Self.busyRotationFactor : log.maxSize
        let needsRotation = exists && log.rotate && Int(info.st_size) >= limit
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
            let written = state.withLock { s in writtenFiles(of: task, in: &s, awaitingSeal: true) }
            do { try log.rotateIfNeeded { Self.isOne(of: written, $0) } } catch { warn("\(error)") }
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
                // Momentary: runs ending give theirs back, and the task's next slot tries again.
                throw KeijiError(.outOfResources, DescriptorLimit.atCeiling(ceiling) + ": \(task)'s log was not opened")
            }
        }
        var opened = stat()
        fstat(fd, &opened)
        let evicted = state.withLock { s -> [Int32] in
            s.clock += 1
            let previous = retire(task, in: &s)  // another run of the task opened one meanwhile
            s.current[task] = fd
            s.open[fd] = Open(fd: fd, task: task, log: log, device: UInt64(opened.st_dev), inode: UInt64(opened.st_ino), users: 1,
                              lastUse: s.clock, retired: false)
            return (previous.map { [$0] } ?? []) + evict(&s)
        }
        evicted.forEach { close($0) }
        return fd
    }

    /// Gives back a descriptor from ``checkOut(_:task:othersWriting:warn:)``. The last user of a file rotated under it
    /// compresses it (a failure leaves it plain, and the next rotation compresses it or says why).
    func checkIn(_ fd: Int32) {
        let (close_, seal) = state.withLock { s -> (Bool, (log: LogFile, written: Set<[UInt64]>)?) in
            guard var entry = s.open[fd] else { return (false, nil) }
            entry.users -= 1
            if entry.users == 0 && entry.retired {
                s.open[fd] = nil
                return (true, entry.awaitsSeal ? (entry.log, writtenFiles(of: entry.task, in: &s, awaitingSeal: false)) : nil)
            }
            s.open[fd] = entry
            return (false, nil)
        }
        if close_ { close(fd) }
        if let seal { try? seal.log.sealPlainSegments { Self.isOne(of: seal.written, $0) } }
    }

    /// Device and inode of each file runs of `task` write through a descriptor here; with `awaitingSeal`, marks those
    /// descriptors to compress their file when closed (it is about to be rotated).
    private func writtenFiles(of task: TaskName, in s: inout State, awaitingSeal: Bool) -> Set<[UInt64]> {
        var files: Set<[UInt64]> = []
        for (fd, entry) in s.open where entry.task == task && entry.users > 0 {
            files.insert([entry.device, entry.inode])
            if awaitingSeal { s.open[fd]?.awaitsSeal = true }
        }
        return files
    }

    private static func isOne(of files: Set<[UInt64]>, _ path: String) -> Bool {
        var info = stat()
        return !files.isEmpty && stat(path, &info) == 0 && files.contains([UInt64(info.st_dev), UInt64(info.st_ino)])
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

    /// Detaches every idle descriptor; returns them for the caller to close.
    private func detachAllIdle(_ s: inout State) -> [Int32] {
        let idle = s.current.filter { s.open[$0.value]?.users == 0 }
        for (task, fd) in idle {
            s.current[task] = nil
            s.open[fd] = nil
        }
        return Array(idle.values)
    }

    /// Over capacity: the least recently used idle descriptors, down to three quarters of the capacity (so
    /// the sort is paid once per many opens), removed from the state; the caller closes them.
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
