import Foundation
import Testing

/// The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by selenium
/// through Tests/browser/dashboard_walk.py) against a real running system: log in, see the tasks, open one, see a
/// new run arrive, click Disable, and find the command in the journal as the CLI would have written it. It saves
/// a PNG of each page in a folder it prints. Under `CI=true` a missing browser, driver or selenium fails the
/// test; elsewhere it skips with the reason (scripts/install-deps --tests installs them).
struct DashboardBrowserTests {
    typealias Session = WalkthroughTests.Session

    /// Why the browser test cannot run here, or nil when it can.
    static func missingTools() -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init) + ["/usr/bin"]
        func found(_ tool: String) -> Bool { paths.contains { FileManager.default.isExecutableFile(atPath: $0 + "/" + tool) } }
        var missing: [String] = []
        if !found("chromium") { missing.append("chromium") }
        if !found("chromedriver") { missing.append("chromedriver (chromium-driver)") }
        if !found("python3") {
            missing.append("python3")
        } else if (try? Self.run(["python3", "-c", "import selenium"], timeout: 60).status) != 0 {
            missing.append("selenium (pip)")
        }
        return missing.isEmpty ? nil : missing.joined(separator: ", ")
    }

    /// Runs a command found on PATH, its output (stdout and stderr together) and status; killed after `timeout`.
    static func run(_ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer.cancel()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func aBrowserLogsInWatchesARunAndDisablesTheTask() async throws {
        if let missing = Self.missingTools() {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("the dashboard's browser test needs \(missing) under CI=true: scripts/install-deps --tests installs them")
            } else {
                print("DashboardBrowserTests: skipping: missing \(missing) (scripts/install-deps --tests installs them)")
            }
            return
        }
        let s = try Session()
        defer { s.cleanUp() }
        let port = try MetricsEndpointTests.freePort()
        try await DashboardTests.initialize(s, dashboardPort: port)
        #expect(try await s.keiji("system", "--start").status == 0)
        for create in [["--name=report", "--desc=nightly report", "--command", "echo \"report at $(date +%T)\"; sleep 0.3", "--every", "2s"],
                       ["--name=backup", "--desc=three nights a week", "--command", "true", "--on", "mon,wed,fri", "--at", "10:00PM"],
                       ["--name=cleanup", "--desc=every five minutes", "--command", "true", "--cron", "*/5 * * * *"]] {
            let created = try await s.run(["task", "--create"] + create)
            #expect(created.status == 0, "\(created.stdout)\(created.stderr)")
        }

        let shots = FileManager.default.temporaryDirectory.path + "/keiji-dashboard-screenshots-" + UUID().uuidString.prefix(8)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("browser/dashboard_walk.py").path
        let walk = try await offThePool {
            try Self.run(["python3", script, "http://127.0.0.1:\(port)", s.home + "/.keiji/dashboard.token", "report", shots], timeout: 600)
        }
        print(walk.output, terminator: "")
        #expect(walk.status == 0, "\(walk.output)")
        var saved = true
        for page in ["overview", "task", "system"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(shots)/\(page).png")[.size] as? Int) ?? 0
            #expect(size > 1000, "\(page).png was saved")
            saved = saved && size > 1000
        }
        // Kept to look at when the walk failed, or when asked for; otherwise each run of the suite would leave one.
        if walk.status == 0, saved, ProcessInfo.processInfo.environment["KEIJI_KEEP_SCREENSHOTS"] == nil {
            try? FileManager.default.removeItem(atPath: shots)
        } else {
            print("DashboardBrowserTests: screenshots in \(shots)")
        }

        // The click went through the engine: the journal has the command and the task is disabled.
        let dump = try await s.keiji("journal", "dump", "--task", "report")
        #expect(dump.stdout.contains("task.disabled"), "\(dump.stdout)")
        #expect(await WalkthroughTests().eventually(.seconds(30)) {
            try await s.keiji("task", "--get", "--name=report").stdout.contains("IsDisabled: true")
        })
        #expect(try await s.keiji("system", "--stop").status == 0)
    }
}
