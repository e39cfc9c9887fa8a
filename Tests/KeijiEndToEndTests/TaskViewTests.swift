import Foundation
import KeijiCore
import KeijiJournal
import Testing

/// `keiji task --list` (every task by its next run, like `systemctl list-timers`) and `keiji task --runs` (one
/// task's history), against the real binaries in a fresh HOME (the session of ``WalkthroughTests``).
struct TaskViewTests {
    typealias Session = WalkthroughTests.Session

    static let listHeader = ["NEXT", "LEFT", "LAST", "PASSED", "TASK", "STATE", "LAST RESULT"]
    static let runsHeader = ["SLOT", "START", "DURATION", "LATE", "RESULT", "ATTEMPT", "TRIGGER", "NODE"]

    /// The cells of each line of a table (cells hold single spaces; columns are two or more apart), up to the
    /// blank line before the footer.
    func table(_ text: String) -> [[String]] {
        text.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty }.map { line in
            line.split(separator: "  ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    func jsonList(_ result: Session.Result) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]], "\(result.stdout)\(result.stderr)")
    }

    func create(_ s: Session, _ name: String, _ command: String, every: String, _ extra: String...) async throws {
        let r = try await s.run(["task", "--create", "--name=\(name)", "--desc=x", "--command", command, "--every", every] + extra)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }

    @Test func listShowsEveryTaskByItsNextRun() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let settings = s.home + "/keiji/settings.conf"
        let text = try String(contentsOfFile: settings, encoding: .utf8)
        try text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix("TIME_ZONE=") ? "TIME_ZONE=UTC" : String($0) }
            .joined(separator: "\n").write(toFile: settings, atomically: true, encoding: .utf8)
        #expect(try await s.keiji("task", "--list").stdout.hasSuffix("0 tasks listed.\n"))
        try await create(s, "hourly", "true", every: "1h")
        try await create(s, "minutely", "true", every: "1m")
        try await create(s, "halfhour", "true", every: "30m")
        try await create(s, "zoff", "true", every: "1s")
        try await create(s, "aoff", "true", every: "1s")
        try await create(s, "killer", "kill -9 $$", every: "2h", "--continue-on-error", "true")
        for name in ["zoff", "aoff"] { #expect(try await s.keiji("task", "--disable", "--name=\(name)").status == 0) }

        var r = try await s.keiji("task", "--list")
        var rows = table(r.stdout)
        #expect(r.status == 0 && rows.first == Self.listHeader, "\(r.stdout)\(r.stderr)")
        // Soonest first; those with no next run last, by name.
        #expect(rows.dropFirst().map { $0[4] } == ["minutely", "halfhour", "hourly", "killer", "aoff", "zoff"], "\(r.stdout)")
        #expect(r.stdout.hasSuffix("\n\n6 tasks listed.\n"), "\(r.stdout)")
        let hourly = try #require(rows.first { $0.count == 7 && $0[4] == "hourly" }, "\(r.stdout)")
        #expect(hourly[0].hasSuffix(" UTC"), "NEXT in TIME_ZONE (UTC here): \(hourly[0])")
        // Created seconds ago (minutes on a very loaded machine): between 50 minutes and an hour left.
        #expect((hourly[1].hasPrefix("5") && hourly[1].contains("min")) || hourly[1] == "1h", "LEFT, human-short: \(hourly[1])")
        #expect(Array(hourly[2...]) == ["-", "-", "hourly", "scheduled", "-"], "never ran: \(hourly)")
        let aoff = try #require(rows.first { $0.count == 7 && $0[4] == "aoff" })
        #expect(aoff == ["-", "-", "-", "-", "aoff", "disabled", "-"], "\(aoff)")

        r = try await s.keiji("task", "--list", "--json")
        var objects = try jsonList(r)
        #expect(objects.compactMap { $0["task"] as? String } == ["minutely", "halfhour", "hourly", "killer", "aoff", "zoff"])
        let hourlyObject = try #require(objects.first { $0["task"] as? String == "hourly" })
        let left = try #require(hourlyObject["leftSeconds"] as? Double, "\(hourlyObject)")
        #expect(left > 3000 && left <= 3600 && hourlyObject["state"] as? String == "scheduled", "\(hourlyObject)")
        #expect((hourlyObject["next"] as? String)?.hasSuffix("Z") == true && hourlyObject["last"] is NSNull && hourlyObject["lastOutcome"] is NSNull)
        #expect(objects.first { $0["task"] as? String == "zoff" }?["next"] is NSNull)

        // Runs show up in LAST, PASSED and LAST RESULT.
        #expect(try await s.keiji("system", "--start").status == 0)
        for name in ["hourly", "killer"] { #expect(try await s.keiji("task", "--run", "--name=\(name)").status == 0) }
        let ran = await WalkthroughTests().eventually(.seconds(30)) {
            let list = try jsonList(try await s.keiji("task", "--list", "--json"))
            return list.filter { ["hourly", "killer"].contains($0["task"] as? String) && $0["lastOutcome"] is String }.count == 2
        }
        #expect(ran, "both runs reached the view")
        r = try await s.keiji("task", "--list")
        rows = table(r.stdout)
        let hourlyRan = try #require(rows.first { $0.count == 7 && $0[4] == "hourly" }, "\(r.stdout)")
        #expect(hourlyRan[2] != "-" && hourlyRan[3].hasSuffix(" ago") && hourlyRan[6] == "succeeded", "\(hourlyRan)")
        let killer = try #require(rows.first { $0.count == 7 && $0[4] == "killer" }, "\(r.stdout)")
        #expect(killer[5] == "scheduled" && killer[6] == "killed (signal 9)", "\(killer)")
        objects = try jsonList(try await s.keiji("task", "--list", "--json"))
        let killerObject = try #require(objects.first { $0["task"] as? String == "killer" })
        #expect(killerObject["lastOutcome"] as? String == "failed" && killerObject["lastSignal"] as? Int == 9 && killerObject["lastExitCode"] is NSNull,
                "\(killerObject)")
        let passed = try #require(killerObject["passedSeconds"] as? Double, "\(killerObject)")
        #expect(passed >= 0 && passed < 600 && killerObject["last"] is String, "\(killerObject)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A task that exits 0, 3, 0, 3, … by a counter file: `--runs` lists its runs newest first with their exit
    /// codes, `--limit` bounds them, and refusals are one line.
    @Test func runsShowATasksHistoryNewestFirst() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try await create(s, "flaky", "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $((n % 2)) -eq 0 ] || exit 3",
                         every: "1s", "--continue-on-error", "true")
        #expect(try await s.keiji("system", "--start").status == 0)
        let enough = await WalkthroughTests().eventually(.seconds(60)) {
            try jsonList(try await s.keiji("task", "--runs", "--name=flaky", "--json")).count >= 4
        }
        #expect(enough, "four runs within a minute")
        // Disabled, and its last run over, the history stands still while it is read.
        #expect(try await s.keiji("task", "--disable", "--name=flaky").status == 0)
        #expect(await WalkthroughTests().eventually(.seconds(30)) {
            try await s.keiji("task", "--get", "--name=flaky").stdout.contains("IsRunning: false")
        })
        let count = try #require(Int(try String(contentsOfFile: s.home + "/keiji/tasks/flaky/count", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let host = try String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        let runs = try jsonList(try await s.keiji("task", "--runs", "--name=flaky", "--json"))
        // Runs that started (a slot missed on a loaded machine is listed too, without a start; a slot journaled within
        // the firing lead when the disable came ends stopped, and its process never began).
        let started = runs.filter { $0["start"] is String && $0["outcome"] as? String != "stopped" }
        #expect(started.count >= min(count, 4) && runs.count <= 20, "the view keeps the last 20: \(runs.count) listed, \(count) ran")
        // Newest first: the newest run read count-1 from the file, the one before it count-2, ….
        for (i, run) in started.enumerated() {
            let n = count - 1 - i
            #expect(run["exitCode"] as? Int == (n % 2 == 0 ? 0 : 3) && run["outcome"] as? String == (n % 2 == 0 ? "succeeded" : "failed"), "run \(i): \(run)")
            #expect(n % 2 == 0 ? run["message"] is NSNull : run["message"] as? String == "exit status 3", "run \(i): \(run)")
            #expect(run["signal"] is NSNull && run["attempt"] as? Int == 1 && ["schedule", "catchUp"].contains(run["trigger"] as? String)
                    && run["node"] as? String == host, "\(run)")
            #expect(run["slot"] is String && (run["durationSeconds"] as? Double ?? -1) >= 0 && run["latenessSeconds"] is Double, "\(run)")
        }
        let ends = runs.compactMap { $0["end"] as? String }
        #expect(ends == ends.sorted(by: >), "newest first: \(ends)")

        var r = try await s.keiji("task", "--runs", "--name=flaky")
        let rows = table(r.stdout)
        #expect(r.status == 0 && rows.first == Self.runsHeader, "\(r.stdout)\(r.stderr)")
        #expect(rows.dropFirst().map { $0[4] } == runs.map { $0["result"] as? String ?? "?" }, "\(r.stdout)")
        #expect(rows.dropFirst().allSatisfy { $0.count == 8 && $0[7] == host }, "\(r.stdout)")
        #expect(r.stdout.hasSuffix("\n\n\(runs.count) runs listed.\n"), "\(r.stdout)")

        r = try await s.keiji("task", "--runs", "--name=flaky", "--limit", "2")
        #expect(table(r.stdout).count == 3 && r.stdout.hasSuffix("2 runs listed.\n"), "\(r.stdout)")
        #expect(table(r.stdout).dropFirst().map { $0[1] } == rows.dropFirst().prefix(2).map { $0[1] }, "the two newest")
        for limit in ["0", "1001"] {
            TaskCommandTests().refused(try await s.keiji("task", "--runs", "--name=flaky", "--limit", limit), saying: "--limit must be between 1 and 1000")
        }
        TaskCommandTests().refused(try await s.keiji("task", "--runs", "--name=nosuch"), saying: "no task named nosuch")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A run journaled as started that ended before its process began (a stop, a `--disable` or `--delete` within
    /// the firing lead) is listed without a start, duration or lateness, as `stopped (never began)`, by `--runs`
    /// and `--list`, text and JSON.
    @Test func aRunThatNeverBeganIsListedWithoutAStart() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try await create(s, "lead", "true", every: "1h")
        try await Self.journalARunThatNeverBegan(s, task: "lead")
        try await create(s, "other", "true", every: "1h")  // an offline command brings the view up to the journal

        let runs = try jsonList(try await s.keiji("task", "--runs", "--name=lead", "--json"))
        #expect(runs.count == 1, "\(runs)")
        let run = try #require(runs.first)
        #expect(run["start"] is NSNull && run["durationSeconds"] is NSNull && run["latenessSeconds"] is NSNull, "\(run)")
        #expect(run["slot"] is String && run["outcome"] as? String == "stopped" && run["result"] as? String == "stopped (never began)", "\(run)")
        #expect(run["message"] as? String == "the scheduler stopped before the run began", "\(run)")
        let text = try await s.keiji("task", "--runs", "--name=lead")
        let row = try #require(table(text.stdout).dropFirst().first, "\(text.stdout)")
        #expect(Array(row[1...4]) == ["-", "-", "-", "stopped (never began)"], "\(text.stdout)")

        let list = try await s.keiji("task", "--list")
        #expect(table(list.stdout).contains { $0.contains("lead") && $0.last == "stopped (never began)" }, "\(list.stdout)")
        let timers = try jsonList(try await s.keiji("task", "--list", "--json"))
        #expect(timers.first { $0["task"] as? String == "lead" }?["lastResult"] as? String == "stopped (never began)", "\(timers)")
    }

    /// Appends to the session's journal (no scheduler running) the two records a stop writes for a run of `task` it
    /// ends before the run began (FiringLeadTests makes them with a real engine), for the slot of this second: a
    /// scheduler started after it has no slot of an hourly task to catch up.
    static func journalARunThatNeverBegan(_ s: Session, task name: String) async throws {
        let task = try TaskName(name), slot = Int64(Date().timeIntervalSince1970)
        let journal = try Journal.open(directory: Workspace(home: s.home).journalDirectory)
        for entry in [JournalEntry(at: slot * 1000, .runStarted(RunStart(runID: "unbegun", task: task, slot: slot, attempt: 1, trigger: .schedule))),
                      JournalEntry(at: slot * 1000, .runFinished(RunEnd(runID: "unbegun", task: task, outcome: .stopped, exitCode: nil, signal: nil,
                                                                        durationMs: 0, latenessMs: nil, final: true,
                                                                        message: RunEnd.notBegunMessage("the scheduler stopped"))))] {
            _ = try await journal.append(try entry.encoded())
        }
        try await journal.close()
    }
}
