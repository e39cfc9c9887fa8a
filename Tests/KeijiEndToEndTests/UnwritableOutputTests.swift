import Foundation
import Testing

/// keiji with a stdout or stderr it cannot write to (closed, `/dev/full`, a closed pipe with SIGPIPE ignored): a
/// lost error line never ends the call, and lost output is said, with status 1, as coreutils do.
struct UnwritableOutputTests {
    typealias Session = WalkthroughTests.Session

    /// Runs keiji through `sh` with `redirection` applied to it.
    static func redirecting(_ redirection: String) -> [String] {
        ["/bin/sh", "-c", #"exec "$0" "$@" "# + redirection]
    }

    /// Foundation's `FileHandle.standardError.write` ended these with SIGILL (status 132).
    @Test func aStderrThatCannotBeWrittenEndsNothing() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for redirection in ["2>&-", "2>/dev/full"] {
            s.launcher = Self.redirecting(redirection)
            let missing = try await s.keiji("task", "--get", "--name=nosuch")
            #expect(missing.status == 1, "\(redirection): \(missing.status)")
            let usage = try await s.keiji("task", "--bogus")
            #expect(usage.status == 64, "\(redirection): \(usage.status)")
        }
    }

    /// The stop's "stopping, its runs in progress get their grace time" line crashed it half way: the scheduler
    /// stopped and the bus ran on.
    @Test func aStopWithStderrClosedStopsBothServices() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=stubborn", "--desc=x", "--command", #"trap "" TERM; sleep 60"#,
                                  "--every", "1h").status == 0)
        #expect(try await s.keiji("task", "--run", "--name=stubborn").status == 0)
        var running = false
        for _ in 0..<300 where !running {
            running = try await s.keiji("system", "--status", "--json").stdout.contains(#""running" : true"#)
            if !running { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(running, "the run began")
        s.launcher = Self.redirecting("2>&-")
        let stop = try await s.keiji("system", "--stop")
        #expect(stop.status == 0 && stop.stdout.contains("scheduler: stopped") && stop.stdout.contains("bus: stopped"), "\(stop.status): \(stop.stdout)")
        s.launcher = []
        for service in ["bus", "scheduler"] {
            #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji/exec/services/\(service).pid"), "\(service) stopped")
        }
    }

    /// `print` dropped these errors: `task --get --json > file` on a full disk exited 0 with the file cut short.
    @Test func aFailedWriteToStdoutIsAWriteError() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=x", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        for (redirection, reason) in [(">/dev/full", "No space left on device"), (">&-", "Bad file descriptor")] {
            s.launcher = Self.redirecting(redirection)
            for arguments in [["task", "--get", "--json"], ["task", "--list"], ["--help"]] {
                let r = try await s.run(arguments)
                #expect(r.status == 1 && r.stderr == "error: write error: \(reason)\n", "\(arguments) \(redirection): \(r.status) \(r.stderr)")
            }
        }
        // A change is made whatever became of its report.
        s.launcher = Self.redirecting(">/dev/full")
        let disable = try await s.keiji("task", "--disable", "--name=x")
        #expect(disable.status == 1 && disable.stderr == "error: write error: No space left on device\n", "\(disable.stderr)")
        s.launcher = []
        #expect(try await s.keiji("task", "--get", "--name=x", "--json").stdout.contains(#""IsDisabled" : true"#))
    }

    /// `--logs --follow` into a pipe whose reader is gone, SIGPIPE ignored: it crashed in `FileHandle.write`.
    @Test func followIntoAClosedPipeEndsWithAWriteError() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=talky", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let get = try JSONSerialization.jsonObject(with: Data(try await s.keiji("task", "--get", "--name=talky", "--json").stdout.utf8))
        let log = try #require((get as? [String: Any])?["LogPath"] as? String)
        try FileManager.default.createDirectory(atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "first line\n".write(toFile: log, atomically: false, encoding: .utf8)
        // Lines keep coming until the follower ends: whatever it wrote before `head` went sat in the pipe.
        let appending = Task.detached {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            while !Task.isCancelled {
                try handle.seekToEnd()
                try handle.write(contentsOf: Data("another line\n".utf8))
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { appending.cancel() }
        s.launcher = ["/bin/bash", "-c", #"trap "" PIPE; timeout 60 "$0" "$@" | head -c0; exit "${PIPESTATUS[0]}""#]
        let follow = try await s.keiji("task", "--logs", "--follow", "--name=talky")
        #expect(follow.status == 1 && follow.stderr == "error: write error: Broken pipe\n", "\(follow.status): \(follow.stderr)")
    }

    /// `--logs --follow | head -1` of a log nothing more is written to hung until the task's next line (an hour
    /// away for an hourly task): the follower noticed its reader had gone only when it next wrote. It now ends within
    /// a tick, as a write into the closed pipe would end it: by SIGPIPE (141), or with a write error when that is ignored.
    @Test func followEndsOnceItsReaderGoesThoughNothingIsWritten() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=quiet", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let get = try JSONSerialization.jsonObject(with: Data(try await s.keiji("task", "--get", "--name=quiet", "--json").stdout.utf8))
        let log = try #require((get as? [String: Any])?["LogPath"] as? String)
        try FileManager.default.createDirectory(atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "one line\nthe last line\n".write(toFile: log, atomically: false, encoding: .utf8)
        // `timeout` (124) bounds the hang it was; `head` has gone once it printed its line.
        for (pipe, status, stderr) in [("default", Int32(141), ""), ("ignore", 1, "error: write error: Broken pipe\n")] {
            s.launcher = ["/bin/bash", "-c", #"env --\#(pipe)-signal=PIPE timeout 60 "$0" "$@" | head -1; exit "${PIPESTATUS[0]}""#]
            let follow = try await s.keiji("task", "--logs", "--follow", "--lines", "1", "--name=quiet")
            #expect(follow.status == status && follow.stdout == "the last line\n" && follow.stderr == stderr, "\(follow.status): \(follow.stdout)\(follow.stderr)")
        }
    }
}
