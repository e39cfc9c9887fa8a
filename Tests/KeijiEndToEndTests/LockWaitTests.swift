import Foundation
import KeijiCore
import Testing

@testable import keiji

/// A keiji call that finds a lock held by another process waits for it, says so with the holder's pid, and gives up
/// after a bounded time with one line naming the lock; "the scheduler is running" is said only when one is.
struct LockWaitTests {
    typealias Session = WalkthroughTests.Session

    /// This test process holding a `flock` on `path` (a file or a directory), as another keiji call would: its pid is
    /// the holder's. Close-on-exec, so no process the tests start shares it.
    final class Holder: @unchecked Sendable {
        private let fd: Int32

        init(_ path: String) throws {
            fd = FileManager.default.fileExists(atPath: path) ? open(path, O_RDONLY | O_CLOEXEC) : open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
            try #require(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "locked \(path)")
        }

        var pid: Int32 { getpid() }

        func release() { close(fd) }
    }

    /// Offline, the journal held past the half second a journal's open retries its lock: that call said "the
    /// scheduler is running but not reachable through keiji-bus" (a quarter of a parallel script's commands), and
    /// `journal compact` "the scheduler holds the journal". Both wait for the other call now, and succeed.
    @Test func anOfflineCommandWaitsForAnotherCallHoldingTheJournal() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=x", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let holder = try Holder(s.home + "/.keiji/journal")
        // Their stderr in a file, read as they run: the journal is let go once both have said they wait (keiji can take
        // seconds to start on a loaded host, so a fixed hold could end before they even tried).
        let stderr = s.home + "/stderr"
        s.launcher = UnwritableOutputTests.redirecting("2>>" + stderr)
        let waiting = "waiting for another keiji call (pid \(holder.pid)) that holds the journal…"
        let releasing = Task.detached {
            for _ in 0..<600 {
                let said = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
                if said.components(separatedBy: "that holds the journal…").count == 3 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            holder.release()
        }
        async let disable = s.keiji(within: .seconds(120), "task", "--disable", "--name=x")
        async let compact = s.keiji(within: .seconds(120), "journal", "compact")
        let (d, c) = try await (disable, compact)
        try await releasing.value
        s.launcher = []
        let said = try String(contentsOfFile: stderr, encoding: .utf8)
        #expect(d.status == 0 && c.status == 0, "\(d.status) \(c.status): \(said)")
        #expect(said == waiting + "\n" + waiting + "\n", "\(said)")
        #expect(try await s.keiji("task", "--get", "--name=x", "--json").stdout.contains(#""IsDisabled" : true"#))
    }

    /// A create behind a workspace lock that is never released (a create stopped with Ctrl-Z in another terminal)
    /// waited forever, with no word of who held it. A create waits for the lock before it writes anything, saying so
    /// with the holder's pid; the lock's wait then ends after its bound (a call's 60 s, 1 s here) naming the lock and
    /// its holder, which the call prints as its one error line.
    @Test func aLockHeldTooLongEndsTheWaitNamingTheLockAndItsHolder() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let lock = s.home + "/.keiji/workspace-changes.lock"
        let holder = try Holder(lock)
        let stderr = s.home + "/stderr"
        s.launcher = UnwritableOutputTests.redirecting("2>>" + stderr)
        let waiting = "waiting for another keiji call (pid \(holder.pid)) that changes the workspace…\n"
        let releasing = Task.detached {
            for _ in 0..<600 {
                if ((try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "").contains(waiting) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            holder.release()
        }
        let r = try await s.keiji(within: .seconds(120), "task", "--create", "--name=x", "--desc=x", "--command", "true", "--every", "1h")
        try await releasing.value
        s.launcher = []
        let said = try String(contentsOfFile: stderr, encoding: .utf8)
        #expect(r.status == 0 && said == waiting, "\(r.status): \(said)")

        // Held here, the lock's holder goes unnamed (it is the caller: the line above names the holder the same way).
        let again = try Holder(lock)
        defer { again.release() }
        let started = ContinuousClock.now
        #expect {
            _ = try WorkspaceChangeLock(Workspace(home: s.home), waitingAtMost: .seconds(1))
        } throws: { error in
            (error as? WorkspaceChangeLock.HeldTooLong)?.description
                == "another keiji call has held \(lock) for over 1 s; nothing was done: retry once it ends "
                + "(a command stopped with Ctrl-Z holds it until resumed)"
        }
        #expect(ContinuousClock.now - started >= .seconds(1), "it waited its bound")
    }
}
