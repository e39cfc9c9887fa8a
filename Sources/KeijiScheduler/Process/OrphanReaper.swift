import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Finds the processes of runs that outlived their process group and kills them with their groups. Every run's
/// process gets `KEIJI_RUN_ID` in its environment (children inherit it), so `/proc/<pid>/environ` says which run a
/// process belongs to: a grandchild that outlived the direct child's parent-death signal, a daemon that double-forked
/// into a session of its own (`setsid`, Python's `start_new_session`). Used where keiji means "this run's processes
/// must die": a timeout, a stop, a delete, the scheduler's stop, a dead spawn helper, a crashed scheduler's runs.
enum OrphanReaper {
    /// Kills every process (and its group) whose environment names one of `runIDs`. Returns how many. One scan of
    /// `/proc`: one open and read of each process's `environ` (those of other users' processes cannot be opened).
    static func killProcesses(ofRuns runIDs: Set<String>) -> Int {
        guard !runIDs.isEmpty, let directory = opendir("/proc") else { return 0 }
        defer { closedir(directory) }
        let ids = Set(runIDs.map { Array($0.utf8) })
        let (me, myGroup) = (getpid(), getpgid(0))
        var environment = [UInt8](repeating: 0, count: 64 * 1024)
        var killed = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), pid != me else { continue }
            let length = ProcessEnvironment.read(pid, into: &environment)
            guard length > 0, let id = ProcessEnvironment.value(of: RunVariables.runID, in: environment[..<length]), ids.contains(id) else { continue }
            let group = getpgid(pid)
            if group > 1 && group != myGroup { kill(-group, SIGKILL) }
            kill(pid, SIGKILL)
            killed += 1
        }
        return killed
    }

    private struct Sweeps: Sendable {
        var asked: [(runID: String, done: CheckedContinuation<Void, Never>)] = []
        var scanning = false
    }

    private static let sweeps = Mutex(Sweeps())

    /// Kills what is left of a run keiji ended, once its group has been killed, and returns when that is done. The
    /// scan runs on a thread of its own (it blocks); runs asking while one is under way share the next, so a stop
    /// that ends a thousand runs scans `/proc` a few times, not a thousand.
    static func sweep(run runID: String) async {
        await withCheckedContinuation { done in
            let first = sweeps.withLock { s in
                s.asked.append((runID, done))
                defer { s.scanning = true }
                return !s.scanning
            }
            if first { Thread.detachNewThread { scanWhileAsked() } }
        }
    }

    /// The longest a run's end waits for its sweep: reading `/proc/<pid>/environ` blocks on a process stuck in D
    /// state (a hung NFS mount), and no run keiji ended would record its end.
    static let sweepBound: Duration = .seconds(2)

    /// `sweep` of the run, awaited at most `bound`; past it, the sweep goes on on its own thread and this returns,
    /// saying so in the scheduler's log. Returns whether the sweep was done.
    @discardableResult
    static func sweep(run runID: String, atMost bound: Duration,
                      sweeping sweep: @escaping @Sendable (String) async -> Void = { await sweep(run: $0) }) async -> Bool {
        let done = Once()
        let finished = await withCheckedContinuation { continuation in
            done.set(continuation)
            Task {
                await sweep(runID)
                done.resume(true)
            }
            Task {
                try? await Task.sleep(for: bound)
                done.resume(false)
            }
        }
        if !finished {
            SpawnServer.sayOnStandardError("the sweep for what run \(runID) left was not done after \(bound); its end is recorded, the sweep goes on")
        }
        return finished
    }

    /// A continuation resumed by whichever comes first.
    private final class Once: Sendable {
        private let continuation = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        func set(_ value: CheckedContinuation<Bool, Never>) { continuation.withLock { $0 = value } }
        func resume(_ value: Bool) { continuation.withLock { $0.take() }?.resume(returning: value) }
    }

    private static func scanWhileAsked() {
        while true {
            let batch = sweeps.withLock { s in
                defer { s.asked = [] }
                if s.asked.isEmpty { s.scanning = false }
                return s.asked
            }
            guard !batch.isEmpty else { return }
            _ = killProcesses(ofRuns: Set(batch.map(\.runID)))
            for asked in batch { asked.done.resume() }
        }
    }
}
