import Foundation
import Testing

/// `keiji task --list` (every task by its next run, like `systemctl list-timers`), against the real binaries in a fresh HOME (the session of ``WalkthroughTests``).
struct TaskViewTests {
    typealias Session = WalkthroughTests.Session

    static let listHeader = ["NEXT", "LEFT", "LAST", "PASSED", "TASK", "STATE", "LAST RESULT"]

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
        #expect(hourly[0].hasSuffix(" UTC") || hourly[0].hasSuffix(" GMT"), "NEXT in TIME_ZONE (UTC here): \(hourly[0])")
        #expect(hourly[1].hasPrefix("59min") || hourly[1] == "1h", "LEFT, human-short: \(hourly[1])")
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
            return list.filter { $0["lastOutcome"] is String }.count == 2
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
}
