import Foundation
import Testing

/// The issue's inputs through the real `keiji` binary: each is refused with one line naming the flag and its
/// range, as a usage error (exit 64: wrong whatever the workspace holds), and leaves nothing behind (no task
/// folder, nothing journaled).
struct InputRangeCLITests {
    @Test func outOfRangeFlagsAreRefusedWithTheFlagAndTheRange() async throws {
        let s = try WalkthroughTests.Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let cases: [([String], String)] = [
            (["--every", "1s", "--timeout", "700000"], "--timeout must be between 1 ms and 7 days (604800 s) (got 700000.0)"),
            (["--every", "1s", "--timeout", "0.0001"], "--timeout takes a plain number of seconds, at most 3 decimals, between 1 ms and 7 days (604800 s), or none (got 0.0001)"),
            // Swift's Double(_:) read these as numbers: 16 s, 10^16 s, not a number.
            (["--every", "1s", "--timeout", "0x10"], "--timeout takes a plain number of seconds, at most 3 decimals, between 1 ms and 7 days (604800 s), or none (got 0x10)"),
            (["--every", "1s", "--timeout", "1e16"], "--timeout takes a plain number of seconds, at most 3 decimals, between 1 ms and 7 days (604800 s), or none (got 1e16)"),
            (["--every", "1s", "--timeout", "nan"], "--timeout takes a plain number of seconds, at most 3 decimals, between 1 ms and 7 days (604800 s), or none (got nan)"),
            (["--every", "3000000000h"], "--every must be between 1 s and 365 days (got 3000000000h)"),
            (["--every", "3000000000000000h"], "--every must be between 1 s and 365 days (got 3000000000000000h)"),
            (["--every", "1s", "--retries", "101"], "--retries must be between 0 and 100 (got 101)"),
            (["--on", "fri,fri", "--at", "10:00"], "--on names Friday twice (give each day once, 1 to 7 days)"),
            (["--cron", "*/60 * * * *"], "--cron minute step must be between 1 and 59 (got 60)"),
            (["--every", "2s", "--jitter", "30"],
             "--jitter (30 s) must be shorter than the time between two slots of the schedule (2 s at the least): a longer one would fire slots out of order"),
            (["--every", "1s", "--grace", "3601"], "--grace must be between 0 and 3600 seconds (got 3601.0)"),
            (["--every", "1s", "--grace", "1e-300"], "error: The value '1e-300' is invalid for '--grace <grace>': give seconds as a plain number, at most 3 decimals, e.g. 5 or 0.25 (see 'keiji task --help')\n"),
            (["--every", "1s", "--grace", "nan"], "The value 'nan' is invalid for '--grace <grace>': give seconds as a plain number"),
            (["--every", "1s", "--retry-backoff", "inf"], "The value 'inf' is invalid for '--retry-backoff <retry-backoff>': give seconds as a plain number"),
            (["--every", "1s", "--retry-backoff", "0x10"], "The value '0x10' is invalid for '--retry-backoff <retry-backoff>': give seconds as a plain number"),
            (["--every", "1s", "--catch-up-limit", "0"], "--catch-up-limit must be between 1 and 1000 (got 0)"),
            (["--on", "friday", "--at", "0:00PM"], "a 12-hour time has hours 1–12"),
            (["--on", "friday", "--at", "+1:+0"], "invalid time \"+1:+0\""),
            (["--on", "friday", "--at", "24:00"], "error: invalid time \"24:00\": hours are 0–23, minutes and seconds 0–59 (see 'keiji task --help')\n"),
            // A sign or a space around a number was taken by Int(_:) (`+10s` ran every 10 s): numbers are digits alone.
            (["--every", "+10s"], #"error: invalid interval "+10s": use a positive number with s, m or h, e.g. 10s, 5m, 2h"# + " (see 'keiji task --help')\n"),
            (["--every", " 10s"], #"invalid interval " 10s""#),
            (["--every", "10s "], #"invalid interval "10s ""#),
            (["--every", "1s", "--jitter", "+0"], "error: The value '+0' is invalid for '--jitter <jitter>': give whole seconds as a plain number, e.g. 30 (see 'keiji task --help')\n"),
            (["--every", "1s", "--jitter", " 0"], "The value ' 0' is invalid for '--jitter <jitter>'"),
            (["--every", "1s", "--timeout", "+5"], "--timeout takes a plain number of seconds"),
            (["--every", "1s", "--timeout", "5 "], "--timeout takes a plain number of seconds"),
            (["--every", "1s", "--grace", "+1"], "The value '+1' is invalid for '--grace <grace>'"),
            (["--every", "1s", "--retry-backoff", " 1"], "The value ' 1' is invalid for '--retry-backoff <retry-backoff>'"),
            (["--cron", "+5 * * * *"], #"error: --cron minute field "+5" has a sign: its numbers are digits alone"# + " (see 'keiji task --help')\n"),
            (["--cron", "0 */+2 * * *"], #"--cron hour field "*/+2" has a sign"#),
        ]
        for (flags, message) in cases {
            let r = try await s.run(["task", "--create", "--name=t", "--desc=x", "--command", "echo"] + flags)
            #expect(r.status == 64 && r.stderr.contains(message), "\(flags): \(r.status) \(r.stdout)\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/t"), "\(flags) left a task folder")
        }
        // Text that would make a task that does nothing, or break every Swift task's build.
        let refusals: [([String], String)] = [
            (["--name=t", "--command", "   ", "--every", "1h"], "--command must not be empty (leave it out for a Swift task)"),
            (["--name=t", "--command", "", "--every", "1h"], "--command must not be empty (leave it out for a Swift task)"),
            (["--name=keijitaskkit"], "a Swift task cannot be named keijitaskkit: its build target would clash with the SDK's KeijiTaskKit"),
        ]
        for (flags, message) in refusals {
            let r = try await s.run(["task", "--create", "--desc=x"] + flags)
            #expect(r.status != 0 && r.stderr.hasPrefix("error: \(message)"), "\(flags): \(r.stdout)\(r.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks").isEmpty, "\(flags) left a task folder")
        }
        // A description or command no run could pass to execve (it was saved, and every run failed to start).
        let big = String(repeating: "d", count: 131_060)
        let sizes: [([String], String)] = [
            (["--desc", big, "--command", "echo", "--every", "1h"], "error: --desc takes 131060 bytes; a run gets it as TASK_DESCRIPTION"),
            (["--desc", big], "error: --desc takes 131060 bytes; a run gets it as TASK_DESCRIPTION"),  // a Swift task's too
            (["--desc", String(big.prefix(130_000)), "--command", String(repeating: "c", count: 130_000), "--every", "1h"],
             "error: --command and --desc take 260019 bytes in a run; its arguments and environment may take at most 262144"),
        ]
        for (flags, message) in sizes {
            let r = try await s.run(["task", "--create", "--name=t"] + flags)
            #expect(r.status == 64 && r.stderr.hasPrefix(message) && r.stderr.split(separator: "\n").count == 1, "\(r.status) \(r.stderr.prefix(300))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks").isEmpty, "a refused size left a task folder")
        }
        // Refused as usage errors too in the other commands and actions: values wrong whatever the workspace holds.
        let elsewhere: [([String], String)] = [
            (["task", "--build", "--name=t", "--retries", "101"], "error: --retries must be between 0 and 100 (got 101) (see 'keiji task --help')\n"),
            (["task", "--build", "--name=t", "--time-zone", "Mars/Base"], "error: unknown time zone \"Mars/Base\" (see 'keiji task --help')\n"),
            (["task", "--get", "--name=../t"], "error: invalid task name \"../t\""),
            (["task", "--runs", "--name=t", "--limit", "0"], "error: --limit must be between 1 and 1000 (got 0) (see 'keiji task --help')\n"),
            (["system", "--logs", "--scheduler", "--lines", "0"], "error: --lines must be between 1 and 100000 (got 0) (see 'keiji system --help')\n"),
            (["system", "--logs"], "error: --logs needs --bus or --scheduler (see 'keiji system --help')\n"),
            (["journal", "dump", "--task", "a b"], "error: invalid task name \"a b\""),
        ]
        for (arguments, message) in elsewhere {
            let r = try await s.run(arguments)
            #expect(r.status == 64 && r.stderr.hasPrefix(message), "\(arguments): \(r.status) \(r.stdout)\(r.stderr)")
        }
        let reversed = try await s.keiji("journal", "dump", "--from", "10", "--to", "5")
        #expect(reversed.status == 64 && reversed.stderr == "error: --from (10) must not be greater than --to (5) (see 'keiji journal dump --help')\n",
                "\(reversed.status) \(reversed.stderr)")
        // The edges pass.
        let ok = try await s.run(["task", "--create", "--name=t", "--desc=x", "--command", "echo", "--every", "8760h", "--timeout", "604800", "--retries", "100"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let listed = try await s.keiji("task", "--get", "--name=t")
        #expect(listed.status == 0 && listed.stdout.contains("interval:8760"), "\(listed.stdout)\(listed.stderr)")
        // --help gives the same ranges, in the units the flags take (`--every` said 365 days, and no day unit exists;
        // `--timeout` gave none).
        let help = try await s.keiji("task", "--help").stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("(1s to 8760h, which is 365 days; there is no day unit)") && help.contains("0.001–604800 (1 ms to 7 days)"), "\(help)")
    }
}
