import Foundation
import Testing

/// `keiji task` commands report what actually happened, against the real binaries in a fresh HOME on their own
/// bus ports (the session of ``WalkthroughTests``).
struct TaskCommandTests {
    typealias Session = WalkthroughTests.Session

    func eventually(_ timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return (try? await condition()) == true
    }

    func json(_ result: Session.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)\(result.stderr)")
    }

    /// One line on stderr starting with `error: `, and a non-zero exit.
    func refused(_ result: Session.Result, saying text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status != 0, "\(result.stdout)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("error: ") && result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(text),
                "wanted \(text.debugDescription): \(result.stderr)", sourceLocation: sourceLocation)
    }

    /// A folder holding only keiji's own files (a deleted command task's `.env`, or the temporary file a create
    /// killed while writing it left) does not block a create; one with anything else needs --force.
    @Test func onlyKeijisOwnLeftoversInAFolderLetACreateThrough() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let folder = s.home + "/keiji/tasks/t0"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("TASK_NAME=t0\n".utf8).write(to: URL(fileURLWithPath: folder + "/.env.tmp-19657-760279304"))
        var r = try await s.keiji("task", "--create", "--name=t0", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == [".env"])
        try FileManager.default.createDirectory(atPath: s.home + "/keiji/tasks/t1", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: s.home + "/keiji/tasks/t1/notes.txt"))
        r = try await s.keiji("task", "--create", "--name=t1", "--desc=x", "--command", "true", "--every", "1h")
        refused(r, saying: "already has sources")
        // Forced, the folder keeps its owner's files (it was emptied: the scripts a command runs were gone); the
        // .env is the new definition's.
        r = try await s.keiji("task", "--create", "--name=t1", "--desc=second", "--command", "./run.sh", "--every", "1h", "--force")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks/t1")) == ["notes.txt", ".env"])
        #expect(try String(contentsOfFile: s.home + "/keiji/tasks/t1/.env", encoding: .utf8).contains("second"))
    }

    /// A forced create keeps a task disabled or in error, and says so, as `--build` does: redefining a broken command
    /// task to fix it, its owner waited for a run that never came.
    @Test func aForcedCreateOfATaskOnHoldSaysWhatItWaitsFor() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=dz", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("task", "--disable", "--name=dz").status == 0)
        let r = try await s.keiji("task", "--create", "--force", "--name=dz", "--desc=x", "--command", "echo ok", "--every", "1h")
        #expect(r.status == 0 && r.stdout.hasSuffix("\ntask dz is disabled: it runs again once enabled (keiji task --enable --name=dz)\n"),
                "\(r.stdout)\(r.stderr)")
    }

    /// A forced create of a Swift task over a saved command task is refused, its folder untouched: it said "created",
    /// left the command task scheduled with its command, and moved the scripts it runs aside.
    @Test func aForcedSwiftCreateOverACommandTaskIsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=cj", "--desc=x", "--command", "sh ./job.sh", "--every", "1h").status == 0)
        let script = s.home + "/keiji/tasks/cj/job.sh"
        try Data("echo JOB\n".utf8).write(to: URL(fileURLWithPath: script))
        refused(try await s.keiji("task", "--create", "--force", "--name=cj", "--desc=y"), saying: "task cj is a command task")
        #expect(FileManager.default.fileExists(atPath: script), "the command's script is where it was")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/cj/function.swift"))
    }

    /// A forced create of a Swift task keeps the folder it replaces, when its owner edited it, beside the new one and
    /// says where: the edited sources were replaced by the templates without a word. Untouched templates leave nothing.
    @Test func aForcedCreateKeepsTheEditedSourcesItReplaces() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let tasks = s.home + "/keiji/tasks"
        func backups() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: tasks).filter { $0.hasPrefix("sw.") }.sorted() }
        #expect(try await s.keiji("task", "--create", "--name=sw", "--desc=first").status == 0)
        var r = try await s.keiji("task", "--create", "--force", "--name=sw", "--desc=second")
        #expect(r.status == 0 && !r.stdout.contains("kept"), "\(r.stdout)\(r.stderr)")
        #expect(try backups().isEmpty, "untouched templates are not kept")
        let edited = "func function() async throws { print(\"my work\") }\n"
        try edited.write(toFile: tasks + "/sw/function.swift", atomically: true, encoding: .utf8)
        chmod(tasks + "/sw/function.swift", 0o600)
        r = try await s.keiji("task", "--create", "--force", "--name=sw", "--desc=third")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let kept = try #require(try backups().first, "\(r.stdout)")
        #expect(try backups().count == 1 && kept.hasPrefix("sw.replaced-"))
        #expect(r.stdout.split(separator: "\n").filter { $0.contains("kept") } == ["the replaced folder had edits: kept as \(tasks)/\(kept)"], "\(r.stdout)")
        #expect(try String(contentsOfFile: tasks + "/\(kept)/function.swift", encoding: .utf8) == edited)
        #expect(try FileManager.default.attributesOfItem(atPath: tasks + "/\(kept)/function.swift")[.posixPermissions] as? Int == 0o600)
        #expect(try String(contentsOfFile: tasks + "/sw/function.swift", encoding: .utf8) != edited, "the new folder has the templates")
        // Not a task folder of the workspace's package: the backup is never compiled.
        #expect(try !String(contentsOfFile: s.home + "/keiji/Package.swift", encoding: .utf8).contains("replaced"))
    }

    @Test func deletingATaskThatNeverRanSucceedsAndRemovesTheSourceWhenAsked() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=nr", "--desc=never runs", "--command", "true", "--every", "1h").status == 0)
        var r = try await s.keiji("task", "--delete", "--name=nr")
        #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.contains("task nr deleted"), "\(r.stdout)\(r.stderr)")
        // A command task has no binary (its delete said it removed one).
        #expect(r.stdout.hasSuffix("\nremoved its logs; source kept in \(s.home)/keiji/tasks/nr\n"), "\(r.stdout)")
        #expect(try await s.keiji("task", "--create", "--name=nr2", "--desc=never runs", "--command", "true", "--every", "1h").status == 0)
        r = try await s.keiji("task", "--delete", "--name=nr2", "--remove-source")
        #expect(r.status == 0 && r.stderr.isEmpty && r.stdout.hasSuffix("\nremoved its logs and source folder\n"), "\(r.stdout)\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/nr2"), "--remove-source removed the folder")
    }

    /// A Swift task made by `--create` and never built was never saved: `--delete --remove-source` removes its folder
    /// (it said "no task named …" and left the folder and its entry in Package.swift's task list).
    @Test func anUnbuiltSwiftTaskIsRemovedWithRemoveSource() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=unbuilt", "--desc=x").status == 0)
        refused(try await s.keiji("task", "--delete", "--name=unbuilt"), saying: "no task named unbuilt")
        #expect(FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/unbuilt"), "without --remove-source the source stays")
        let r = try await s.keiji("task", "--delete", "--name=unbuilt", "--remove-source")
        #expect(r.status == 0 && r.stdout.contains("is not saved (never built"), "\(r.stdout)\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/unbuilt"))
        #expect(try !String(contentsOfFile: s.home + "/keiji/Package.swift", encoding: .utf8).contains("\"unbuilt\""))
    }

    /// Forced creates of one name at once each replace the folder whole, one after the other: the folder that stays
    /// is the saved definition's, and nothing is left aside (they moved each other's folders aside, and the task's
    /// `.env` was lost or belonged to another definition than the one saved).
    @Test func forcedCreatesOfOneNameAtOnceLeaveTheSavedTasksFolder() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=same", "--desc=first", "--command", "true", "--every", "1h").status == 0)
        let statuses = try await withThrowingTaskGroup(of: Int32.self) { group in
            for index in 0..<8 {
                group.addTask {
                    try await s.keiji("task", "--create", "--force", "--name=same", "--desc=d\(index)", "--command", "true", "--every", "1h").status
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { $0 == 0 }, "\(statuses)")
        let get = try await s.keiji("task", "--get", "--name=same", "--json")
        let saved = try #require(try json(get)["Description"] as? String, "\(get.stdout)\(get.stderr)")
        let environment = try String(contentsOfFile: s.home + "/keiji/tasks/same/.env", encoding: .utf8)
        #expect(environment.contains("TASK_DESCRIPTION=\"\(saved)\""), "saved \(saved), .env \(environment)")
        let left = try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks")
        #expect(left == ["same"], "\(left)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks/same") == [".env"])
    }

    @Test func aDeletedCommandTasksNameCanBeCreatedAgain() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=again", "--desc=first", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("task", "--delete", "--name=again").status == 0)
        let r = try await s.keiji("task", "--create", "--name=again", "--desc=second", "--command", "true", "--every", "1h")
        #expect(r.status == 0, "only keiji's own .env was left: \(r.stderr)")
        #expect(try await s.keiji("task", "--get", "--name=again").stdout.contains("Description: second"))
        // A name in use, or a folder with the user's own files, still needs --force.
        refused(try await s.keiji("task", "--create", "--name=again", "--desc=third", "--command", "true", "--every", "1h"), saying: "--force")
        try "keep me".write(toFile: s.home + "/keiji/tasks/again/notes.txt", atomically: true, encoding: .utf8)
        #expect(try await s.keiji("task", "--delete", "--name=again").status == 0)
        refused(try await s.keiji("task", "--create", "--name=again", "--desc=fourth", "--command", "true", "--every", "1h"), saying: "--force")
        #expect(FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/again/notes.txt"))
    }

    /// A command task is changed by a forced create that restates it, where a flag left out goes back to its
    /// default; `--build` of it says so (it said to create the task, which then failed: it exists).
    @Test func aCommandTasksBuildNamesTheCreateThatChangesIt() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=cmd", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        for flags in [["--timeout", "5"], []] {
            let r = try await s.run(["task", "--name=cmd", "--build"] + flags)
            #expect(r.status == 1, "\(flags): \(r.stdout)\(r.stderr)")
            refused(r, saying: "task cmd is a command task: nothing to build; change it with `keiji task --create --force --name=cmd --desc=… --command …`")
        }
        func timeout() async throws -> String? {
            try await s.keiji("task", "--get", "--name=cmd").stdout.split(separator: "\n").first { $0.hasPrefix("Timeout: ") }.map(String.init)
        }
        #expect(try await s.keiji("task", "--create", "--force", "--name=cmd", "--desc=x", "--command", "true", "--every", "1h", "--timeout", "5").status == 0)
        #expect(try await timeout() == "Timeout: 5s")
        #expect(try await s.keiji("task", "--create", "--force", "--name=cmd", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await timeout() == "Timeout: none", "a flag left out goes back to its default")
    }

    @Test func aRefusedCreateLeavesNothingBehind() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=mixed", "--desc=first", "--command", "true", "--every", "1h").status == 0)
        refused(try await s.keiji("task", "--create", "--name=MIXED", "--desc=clash", "--command", "true", "--every", "1h"), saying: "already exists")
        refused(try await s.keiji("task", "--create", "--name=MIXED", "--desc=clash"), saying: "already exists")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/MIXED"), "no folder for a refused name")
    }

    /// `--create` (which writes in the task's folder) and `--build` (which compiles its sources and the SDK, then runs
    /// the program) refuse a folder of ~/keiji others may write in, naming it and the fix, and change nothing in it.
    @Test func createAndBuildRefuseAFolderOthersCanWriteIn() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let tasks = s.home + "/keiji/tasks"
        chmod(tasks, 0o777)
        refused(try await s.keiji("task", "--create", "--name=c", "--desc=x", "--command", "true", "--every", "1h"),
                saying: "\(tasks) is mode 0777, writable by others, who could make keiji run their code as you: chmod go-w \(tasks)")
        #expect(!FileManager.default.fileExists(atPath: tasks + "/c"))
        chmod(tasks, 0o755)
        #expect(try await s.keiji("task", "--create", "--name=sw", "--desc=x").status == 0)
        chmod(tasks + "/sw", 0o757)
        refused(try await s.keiji("task", "--name=sw", "--build"), saying: "\(tasks)/sw is mode 0757, writable by others")
        chmod(tasks + "/sw", 0o755)
        chmod(s.home + "/keiji/sdk/Sources", 0o757)
        refused(try await s.keiji("task", "--name=sw", "--build"), saying: "\(s.home)/keiji/sdk/Sources is mode 0757, writable by others")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji/build"), "refused before the compile")
    }

    /// `--create` refuses a command whose script in the task's folder others may write, and `--build` a source or
    /// manifest it would compile and run: each named with the fix, left as it is, and nothing compiled.
    @Test func createAndBuildRefuseAFileOthersCanWrite() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let folder = s.home + "/keiji/tasks/c"
        #expect(mkdir(folder, 0o755) == 0)
        let script = folder + "/run.sh"
        #expect(FileManager.default.createFile(atPath: script, contents: Data("#!/bin/sh\n".utf8)) && chmod(script, 0o757) == 0)
        refused(try await s.keiji("task", "--create", "--force", "--name=c", "--desc=x", "--command", "./run.sh", "--every", "1h"),
                saying: "\(script) is mode 0757, writable by others, who could make keiji run their code as you: chmod go-w \(script)")
        chmod(script, 0o755)
        #expect(try await s.keiji("task", "--create", "--force", "--name=c", "--desc=x", "--command", "./run.sh", "--every", "1h").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=sw", "--desc=x").status == 0)
        let source = s.home + "/keiji/tasks/sw/main.swift"
        chmod(source, 0o646)
        refused(try await s.keiji("task", "--name=sw", "--build"), saying: "\(source) is mode 0646, writable by others")
        chmod(source, 0o644)
        let manifest = s.home + "/keiji/sdk/Package.swift"
        chmod(manifest, 0o666)
        refused(try await s.keiji("task", "--name=sw", "--build"), saying: "\(manifest) is mode 0666, writable by others")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji/build"), "refused before the compile")
    }

    /// A Swift task whose save would be refused is neither built nor installed.
    @Test func aRefusedSwiftSaveInstallsNoBinary() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=Mixed", "--desc=swift sources").status == 0, "a Swift task folder")
        #expect(try await s.keiji("task", "--create", "--name=mixed", "--desc=first", "--command", "true", "--every", "1h").status == 0)
        refused(try await s.keiji("task", "--name=Mixed", "--build"), saying: "already exists")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/.keiji/exec/tasks/Mixed"), "no binary for a refused save")
    }

    /// `--logs --follow` prints every run while the log rolls under it (a roll renames the file, which the follower
    /// read by its path every 300 ms: it missed what a roll moved away), and ends when the task is deleted (it went
    /// on printing nothing until killed).
    @Test func followPrintsEveryRunAcrossRollsAndEndsWhenTheTaskIsDeleted() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        try s.setSetting("LOG_MAX_SIZE", "1KB")
        #expect(try await s.keiji("system", "--start").status == 0)
        // About 2 KB a run, over most of a second: the log rolls before every run, a moment after the last lines of
        // the run before (and its end) were written to it.
        let chatty = #"for i in $(seq 40); do echo "line $i of a chatty run, long enough to fill the log"; sleep 0.02; done"#
        #expect(try await s.keiji("task", "--create", "--name=chatty", "--desc=x", "--command", chatty, "--every", "2s").status == 0)
        func runIDs() async throws -> [String] {  // the runs that began, oldest first
            let runs = try JSONSerialization.jsonObject(with: Data(try await s.keiji("task", "--runs", "--name=chatty", "--json", "--limit", "1000").stdout.utf8))
            return ((runs as? [[String: Any]]) ?? []).filter { $0["start"] is String }.compactMap { $0["runId"] as? String }.reversed()
        }
        #expect(await eventually(.seconds(30)) { try await !runIDs().isEmpty })
        // Generous bounds: on a loaded host each of a run's 40 `sleep` processes can take tens of milliseconds to start.
        async let following = s.keiji(within: .seconds(240), "task", "--logs", "--name=chatty", "--follow", "--lines", "1")
        let before = try await runIDs().count
        let folder = try #require(URL(fileURLWithPath: try json(try await s.keiji("task", "--get", "--name=chatty", "--json"))["LogPath"] as? String ?? "")
            .deletingLastPathComponent().path as String?)
        var (seen, files) = (0, [String]())
        #expect(await eventually(.seconds(180)) {
            (seen, files) = (try await runIDs().count, try FileManager.default.contentsOfDirectory(atPath: folder))
            return seen >= before + 8  // the follower may start late, and the view be a run behind
                && files.contains { $0.hasSuffix(".log.lz4") }
        }, "runs begun \(seen) (\(before) before following); log files \(files.sorted())")
        let ran = try await runIDs()
        #expect(try await s.keiji("task", "--delete", "--name=chatty").status == 0)
        let followed = try await following
        #expect(followed.status == 0 && followed.stderr.contains("task chatty was deleted"), "\(followed.status): \(followed.stderr)")

        let started = followed.stdout.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "[keiji] run "), line.hasSuffix(")"), line.contains(" started (attempt") else { return nil }
            return String(line[range.upperBound...].prefix { $0 != " " })
        }
        let positions = started.compactMap { ran.firstIndex(of: $0) }
        #expect(positions.count >= 4, "followed \(started) of \(ran)")
        if let first = positions.min(), let last = positions.max() {
            let missed = ran[first...last].filter { !started.contains($0) }
            #expect(missed.isEmpty, "runs the follower did not print: \(missed)")
            for run in ran[first..<last] {
                #expect(followed.stdout.contains("run \(run) succeeded"), "\(run) ended in the output")
            }
        }
        let whole = followed.stdout.split(separator: "\n").filter { $0.hasPrefix("line 40 of a chatty run") }.count
        #expect(whole >= positions.count - 1, "every run's last line: \(whole) for \(positions.count) runs")
    }

    /// `--logs --follow` of a task that has not run yet says it waits, prints its first run from the start, and ends
    /// when the task is deleted, also before any run (it refused: "has not run yet: no log").
    @Test func followWaitsForATasksFirstRun() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["fresh", "never"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "echo first-run-output; sleep 2", "--every", "1h").status == 0)
        }
        // Their stderr in a file, read as they run: the first run comes once both have said they wait (keiji can take
        // seconds to start on a loaded host, so a fixed pause could end before they even looked for the log).
        let stderr = s.home + "/stderr"
        func said() -> String { (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "" }
        s.launcher = UnwritableOutputTests.redirecting("2>>" + stderr)
        async let following = s.keiji(within: .seconds(120), "task", "--logs", "--follow", "--name=fresh")
        async let waiting = s.keiji(within: .seconds(120), "task", "--logs", "--follow", "--name=never")
        let bothWait = await eventually(.seconds(60)) {
            ["fresh", "never"].allSatisfy { said().contains("task \($0) has not run yet: waiting for its first run") }
        }
        s.launcher = []
        try #require(bothWait, "both followers wait before the first run: \(said())")
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--run", "--name=fresh").status == 0)
        // The run lasts 2 s: its log is there for more than a few of the follower's 300 ms polls before the delete.
        #expect(await eventually(.seconds(60)) { try await s.keiji("task", "--logs", "--name=fresh").stdout.contains("succeeded") })
        for name in ["fresh", "never"] { #expect(try await s.keiji("task", "--delete", "--name=\(name)").status == 0) }
        let (followed, waited) = try await (following, waiting)
        for (name, r) in [("fresh", followed), ("never", waited)] {
            #expect(r.status == 0 && said().contains("task \(name) was deleted"), "\(name) \(r.status): \(said())")
        }
        #expect(followed.stdout.contains("started (attempt 1") && followed.stdout.contains("first-run-output"), "\(followed.stdout)")
        #expect(waited.stdout.isEmpty, "\(waited.stdout)")
    }

    /// `--disable` of a disabled task, `--enable` of an enabled one and `--resolve` of one not in error say so and
    /// exit 0 with nothing journaled, offline and through the scheduler alike (each wrote a record before).
    @Test func commandsThatWouldChangeNothingSaySoAndJournalNothing() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        func records() async throws -> String {  // `segments: 1, … bytes (…), 3 records`: the count (the sizes move at an open)
            String(try await s.keiji("journal", "stats").stdout.prefix { $0 != "\n" }.split(separator: ", ").last ?? "")
        }
        for online in [false, true] {
            if online { #expect(try await s.keiji("system", "--start").status == 0) }
            let before = try await records()
            for (flag, text) in [("--enable", "task q is already enabled"), ("--resolve", "task q is not in error")] {
                let r = try await s.keiji("task", flag, "--name=q")
                #expect(r.status == 0 && r.stdout == text + ": nothing journaled\n" && r.stderr.isEmpty, "\(online) \(r.stdout)\(r.stderr)")
            }
            #expect(try await records() == before, "online: \(online)")
            #expect(try await s.keiji("task", "--disable", "--name=q").status == 0)
            let r = try await s.keiji("task", "--disable", "--name=q")
            #expect(r.status == 0 && r.stdout.contains("task q is already disabled: nothing journaled"), "\(online) \(r.stdout)\(r.stderr)")
            #expect(try await s.keiji("task", "--enable", "--name=q").status == 0)
        }
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// Behind a stalled scheduler (SIGSTOP) a command is not acknowledged within the bus's 10 s, yet it is applied once
    /// the scheduler resumes: exit 75 (`EX_TEMPFAIL`), not 1 as a refusal, so that a script can tell "maybe" from "no".
    @Test func aCommandTheSchedulerDoesNotAcknowledgeExits75() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=x", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let pidFile = try String(contentsOfFile: s.home + "/.keiji/exec/services/scheduler.pid", encoding: .utf8)
        let scheduler = try #require(pidFile.split(separator: " ").first.flatMap { pid_t($0) })
        kill(scheduler, SIGSTOP)
        defer { kill(scheduler, SIGCONT) }
        let r = try await s.keiji(within: .seconds(60), "task", "--disable", "--name=x")
        kill(scheduler, SIGCONT)
        #expect(r.status == 75 && r.stderr == "error: the scheduler did not acknowledge within 10.0 seconds; the command may or may not have been applied\n",
                "\(r.status): \(r.stderr)")
        #expect(await eventually(.seconds(30)) { try await s.keiji("task", "--get", "--name=x", "--json").stdout.contains(#""IsDisabled" : true"#) })
    }

    /// With the services up and `bus.token` emptied (or gone), a command names the token, not a bus that is down
    /// (it said to start the bus, which was running); the restart it suggests makes a new token.
    @Test func aCommandWithoutTheBusTokenSaysSo() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        try "".write(toFile: s.home + "/.keiji/bus.token", atomically: true, encoding: .utf8)
        refused(try await s.keiji("task", "--run", "--name=q"), saying: "bus.token is missing or empty")
        #expect(try await s.keiji("system", "--restart").status == 0)
        let r = try await s.keiji("task", "--run", "--name=q")
        #expect(r.status == 0 && r.stdout.contains("acknowledged by the scheduler"), "\(r.stdout)\(r.stderr)")
    }

    @Test func stopLogsAndLinesReportWhatIsTrue() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=idle", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        refused(try await s.keiji("task", "--stop", "--name=idle"), saying: "no run in progress")
        refused(try await s.keiji("task", "--logs", "--name=nosuch"), saying: "no task named nosuch")
        refused(try await s.keiji("task", "--logs", "--name=idle"), saying: "has not run yet")
        refused(try await s.keiji("task", "--logs", "--name=idle", "--lines", "0"), saying: "--lines must be between 1 and 100000")
        refused(try await s.keiji("task", "--logs", "--name=idle", "--lines=-5"), saying: "--lines must be between 1 and 100000")
        refused(try await s.keiji("system", "--logs", "--lines=0", "--bus"), saying: "--lines must be between 1 and 100000")
        refused(try await s.keiji("system", "--logs", "--bus", "--scheduler"), saying: "exclusive")
    }

    /// An option the action does not take is a usage error naming both (exit 64): it was ignored, with exit 0. A count
    /// equal to its default counts as given. What the help and the docs combine still goes through.
    @Test func anOptionTheActionDoesNotTakeIsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let cases: [([String], String)] = [
            (["--runs", "--name=q", "--lines", "3"], "--lines goes with --logs, not --runs"),
            (["--logs", "--name=q", "--limit", "20"], "--limit goes with --runs, not --logs"),
            (["--disable", "--name=q", "--json"], "--json goes with --get, --list or --runs, not --disable"),
            (["--list", "--name=q"], "--list shows every task: leave out --name (one task: keiji task --get --name=q)"),
            (["--build", "--name=q", "--command", "ls"], "--command goes with --create, not --build"),
            (["--build", "--name=q", "--every", "1m"], "--every goes with --create, not --build"),
            (["--get", "--name=q", "--remove-source"], "--remove-source goes with --delete, not --get"),
            (["--get", "--force"], "--force goes with --create, not --get"),
            (["--get", "--name=q", "--follow"], "--follow goes with --logs, not --get"),
            (["--enable", "--name=q", "--restart"], "--restart goes with --build, not --enable"),
            (["--run", "--name=q", "--retries", "2"], "--retries goes with --create or --build, not --run"),
            (["--delete", "--name=q", "--desc=y"], "--desc goes with --create, not --delete"),
        ]
        for (arguments, text) in cases {
            let r = try await s.run(["task"] + arguments)
            #expect(r.status == 64 && r.stdout.isEmpty && r.stderr == "error: \(text) (see 'keiji task --help')\n", "\(arguments): \(r.status) \(r.stdout)\(r.stderr)")
        }
        let task = try json(try await s.keiji("task", "--get", "--name=q", "--json"))
        #expect(task["IsDisabled"] as? Bool == false && task["IsQueued"] as? Bool == false, "nothing refused was journaled: \(task)")

        for arguments in [["--get", "--json"], ["--get", "--name=q", "--json"], ["--list", "--json"], ["--runs", "--name=q", "--limit", "5", "--json"],
                          ["--create", "--force", "--name=q", "--desc=y", "--command", "true", "--cron", "0 * * * *", "--retries", "1"],
                          ["--delete", "--name=q", "--remove-source"]] {
            let r = try await s.run(["task"] + arguments)
            #expect(r.status == 0, "\(arguments): \(r.stdout)\(r.stderr)")
        }
        refused(try await s.keiji("task", "--logs", "--name=nosuch", "--lines", "5", "--follow"), saying: "no task named nosuch")
    }

    /// Combinations wrong whatever the workspace holds, a missing `--name`, and a `--timeout` that is no number, are usage
    /// errors (exit 64), refused before anything runs: they exited 1, as a command that failed.
    @Test func wrongCombinationsAreUsageErrors() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        // A missing --name is refused before the workspace is looked for (it exited 1, and without one said "no workspace").
        for action in ["--run", "--runs", "--logs", "--stop", "--enable", "--disable", "--delete", "--resolve", "--build", "--create"] {
            let r = try await s.run(["task", action] + (action == "--create" ? ["--desc=x"] : []))
            #expect(r.status == 64 && r.stdout.isEmpty && r.stderr == "error: --name is required with \(action) (see 'keiji task --help')\n",
                    "\(action): \(r.status) \(r.stdout)\(r.stderr)")
        }
        #expect(try await s.keiji("init").status == 0)
        let timeout = "--timeout takes a plain number of seconds, at most 3 decimals, between 1 ms and 7 days (604800 s), or none"
        let cases: [([String], String)] = [
            (["--create", "--name=q", "--desc=x", "--retries", "2"], "a Swift task's policies are set when it is built: give them to `keiji task --name=q --build`"),
            (["--create", "--name=q", "--desc=x", "--every", "1h"], "a Swift task's schedule lives in its schedule.swift; --every/--cron/--on go with --command"),
            (["--create", "--name=q", "--desc=x", "--command", "true", "--on", "friday"], "--on and --at go together, e.g. --on friday --at 10:00PM"),
            (["--create", "--name=q", "--desc=x", "--command", "true", "--at", "10:00"], "--on and --at go together, e.g. --on friday --at 10:00PM"),
            (["--create", "--name=q", "--desc=x", "--command", "true"], #"give one schedule: --every 10s, --cron "*/5 * * * *", or --on friday --at 10:00PM"#),
            (["--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h", "--cron", "* * * * *"], "give one schedule"),
            (["--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h", "--timeout", "abc"], timeout + " (got abc)"),
            (["--build", "--name=q", "--timeout", "1e5"], timeout + " (got 1e5)"),
            // A limit without `--catch-up all` was saved and did nothing.
            (["--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h", "--catch-up-limit", "5"],
             "--catch-up-limit 5 has no effect with catch-up once: it bounds --catch-up all (give that too, or leave the limit out)"),
            (["--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h", "--catch-up", "skip", "--catch-up-limit", "5"],
             "--catch-up-limit 5 has no effect with catch-up skip"),
            (["--build", "--name=q", "--catch-up", "once", "--catch-up-limit", "5"], "--catch-up-limit 5 has no effect with catch-up once"),
        ]
        for (arguments, text) in cases {
            let r = try await s.run(["task"] + arguments)
            #expect(r.status == 64 && r.stdout.isEmpty && r.stderr.hasPrefix("error: \(text)") && r.stderr.hasSuffix(" (see 'keiji task --help')\n"),
                    "\(arguments): \(r.status) \(r.stdout)\(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks").isEmpty)
        let outOfRange = try await s.keiji("task", "--create", "--name=q", "--desc=x", "--command", "true", "--every", "1h", "--timeout", "0")
        #expect(outOfRange.status == 64 && outOfRange.stderr == "error: --timeout must be between 1 ms and 7 days (604800 s) (got 0.0) (see 'keiji task --help')\n",
                "\(outOfRange.status) \(outOfRange.stderr)")
    }

    /// `--name=` with nothing after the `=` is refused naming the option (exit 64): ArgumentParser read it as `--name`
    /// alone and took the next word as its value, so `--desc= hello` described the task as `hello`.
    @Test func anOptionWithAnEmptyAttachedValueIsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let cases: [([String], String)] = [
            (["task", "--create", "--name=", "--desc", "x", "--command", "true", "--every", "1h"], "--name"),
            (["task", "--create", "--name=t", "--desc=", "hello", "--command", "true", "--every", "1h"], "--desc"),
            (["task", "--create", "--name=t", "--desc=x", "--command=", "true", "--every", "1h"], "--command"),
            (["task", "--get", "--name=", "--json"], "--name"),
            (["system", "--logs", "--bus", "--lines=", "5"], "--lines"),
            (["journal", "dump", "--from=", "3"], "--from"),
        ]
        for (arguments, option) in cases {
            let r = try await s.run(arguments)
            let help = "keiji \(arguments[0]) --help"
            #expect(r.status == 64 && r.stdout.isEmpty
                        && r.stderr == "error: \(option) has no value: give it after the '=' (\(option)=<value>), or leave \(option) out (see '\(help)')\n",
                    "\(arguments): \(r.status) \(r.stdout)\(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks").isEmpty)
        // A value that ends with '=' still goes through attached to its option.
        #expect(try await s.keiji("task", "--create", "--name=t", "--desc=a=", "--command=echo --x=", "--every", "1h").status == 0)
        #expect(try json(try await s.keiji("task", "--get", "--name=t", "--json"))["Description"] as? String == "a=")
    }

    /// A single-value option given twice is refused naming it (exit 64), in either form: ArgumentParser kept the last
    /// value without a word, so `--every 1h --every 2h` made a 2-hour task. A value that looks like an option is a value.
    @Test func aSingleValueOptionGivenTwiceIsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let cases: [([String], String, String)] = [
            (["task", "--create", "--name", "a", "--desc", "x", "--every", "1h", "--every", "2h", "--command", "true"], "--every", "keiji task"),
            (["task", "--create", "--name=a", "--desc", "x", "--every", "1h", "--name", "b", "--command", "true"], "--name", "keiji task"),
            (["task", "--create", "--name=a", "--desc=x", "--every=1h", "--command=true", "--retries=1", "--retries=2"], "--retries", "keiji task"),
            (["task", "--logs", "--name", "a", "--lines", "3", "--lines=3"], "--lines", "keiji task"),
            (["system", "--logs", "--bus", "--lines", "3", "--lines", "4"], "--lines", "keiji system"),
            (["journal", "dump", "--from=1", "--from", "2"], "--from", "keiji journal dump"),
        ]
        for (arguments, option, command) in cases {
            let r = try await s.run(arguments)
            #expect(r.status == 64 && r.stdout.isEmpty && r.stderr == "error: \(option) was given twice: give it once (see '\(command) --help')\n",
                    "\(arguments): \(r.status) \(r.stdout)\(r.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.home + "/keiji/tasks").isEmpty)
        // The word after an option is its value, however it looks: each option here is given once.
        let r = try await s.keiji("task", "--create", "--name", "t", "--desc", "--every", "--command", "--name", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let task = try json(try await s.keiji("task", "--get", "--name=t", "--json"))
        #expect(task["Description"] as? String == "--every" && task["Executable"] as? String == "--name", "\(task)")
    }

    /// A word that is not valid UTF-8 is refused naming its option (exit 64): Swift's decoding replaced each bad byte
    /// by U+FFFD, and the task was saved, and ran, with another command than the one given.
    @Test func aValueThatIsNotUTF8IsRefused() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        // The bytes are made by the shell: a Swift `String` argument cannot hold them.
        func shell(_ words: String) async throws -> Session.Result {
            s.launcher = ["/bin/sh", "-c", "exec \"$1\" task \(words)", "sh"]
            defer { s.launcher = [] }
            return try await s.run([])
        }
        let cases = [
            (#"--create --name=raw --desc d --command "$(printf 'printf \377 > out')" --every 1h"#, "--command"),
            (#"--create --name=raw "--desc=$(printf 'a\377b')" --command true --every 1h"#, "--desc"),
            (#"--get "--name=$(printf '\303')""#, "--name"),
        ]
        for (words, option) in cases {
            let r = try await shell(words)
            #expect(r.status == 64 && r.stdout.isEmpty && r.stderr == "error: \(option) is not valid UTF-8 (see 'keiji task --help')\n",
                    "\(words): \(r.status) \(r.stdout)\(r.stderr)")
        }
        #expect(try await s.keiji("task", "--get", "--json").stdout == "[]\n", "nothing saved")
        #expect(try await shell(#"--create --name=raw --desc "$(printf 'caf\303\251')" --command true --every 1h"#).status == 0, "valid UTF-8 goes through")
        #expect(try json(try await s.keiji("task", "--get", "--name=raw", "--json"))["Description"] as? String == "café")
    }

    @Test func onNamesEachDayOnce() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        refused(try await s.keiji("task", "--create", "--name=dup", "--desc=x", "--command", "true", "--on", "fri,mon,friday", "--at", "10:00PM"),
                saying: "--on names Friday twice")
        refused(try await s.keiji("task", "--create", "--name=dup", "--desc=x", "--command", "true", "--on", "mon,,tue", "--at", "10:00PM"), saying: "unknown day")
        #expect(!FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/dup"))
    }

    /// Three `--run`s of a skip task start one run; `--run` of a disabled task is refused and nothing piles up.
    @Test func runRespectsTheOverlapPolicyAndTheDisabledFlag() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=slow", "--desc=x", "--command", "echo slow-run-began; sleep 600", "--every", "1h").status == 0)
        // Its runs show the scheduler has gone on for a while, for the count of slow's runs below.
        #expect(try await s.keiji("task", "--create", "--name=witness", "--desc=x", "--command", "echo witness-ran", "--every", "1s").status == 0)
        func witnessRuns() async throws -> Int {
            try await s.keiji("task", "--logs", "--name=witness", "--lines=100000").stdout.components(separatedBy: "witness-ran\n").count - 1
        }
        // Offline: disabled is refused the same way as online.
        #expect(try await s.keiji("task", "--disable", "--name=slow").status == 0)
        refused(try await s.keiji("task", "--run", "--name=slow"), saying: "keiji task --enable --name=slow")
        #expect(try await s.keiji("task", "--get", "--name=slow").stdout.contains("IsQueued: false"))

        #expect(try await s.keiji("system", "--start").status == 0)
        refused(try await s.keiji("task", "--run", "--name=slow"), saying: "disabled")
        #expect(try await s.keiji("task", "--enable", "--name=slow").status == 0)
        var r = try await s.keiji("task", "--run", "--name=slow")
        #expect(r.status == 0 && r.stdout.contains("queued to run now"), "\(r.stdout)\(r.stderr)")
        for _ in 0..<2 {
            r = try await s.keiji("task", "--run", "--name=slow")
            refused(r, saying: "overlap policy is skip")
        }
        #expect(await eventually { try await s.keiji("task", "--get", "--name=slow").stdout.contains("IsRunning: true") })
        refused(try await s.keiji("task", "--run", "--name=slow"), saying: "already running")
        // Running is applied before the process has printed: its line is waited for.
        #expect(await eventually(.seconds(60)) { try await s.keiji("task", "--logs", "--name=slow").stdout.contains("slow-run-began") })
        // A second run begun beside it would have printed by the time two more slots of the witness have run.
        let witnessed = try await witnessRuns()
        #expect(await eventually(.seconds(60)) { try await witnessRuns() >= witnessed + 2 })
        let log = try await s.keiji("task", "--logs", "--name=slow").stdout
        #expect(log.components(separatedBy: "slow-run-began").count == 2, "exactly one run: \(log)")

        r = try await s.keiji("task", "--stop", "--name=slow")
        // A start the spawn server still holds is withdrawn, not sent SIGTERM: the reply says both.
        #expect(r.status == 0 && r.stdout.hasPrefix("task slow stopping: its run in progress is sent SIGTERM (one not yet begun is withdrawn) ("), "\(r.stdout)\(r.stderr)")
        #expect(await eventually { try await s.keiji("task", "--get", "--name=slow").stdout.contains("IsRunning: false") })
        refused(try await s.keiji("task", "--stop", "--name=slow"), saying: "nothing to stop")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// `--get` shows a description's (or command's) control characters as escapes: printed raw, an ESC or OSC
    /// sequence in it moved the reader's cursor or retitled the terminal, and a newline or tab split its `Key: value`
    /// line (the next line read as a key). The JSON keeps the exact text.
    @Test func getShowsControlCharactersAsEscapes() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let description = "red \u{1B}[31mtext\u{1B}]0;title\u{07} and a\nType: fake\r\tthird\u{2028}line, back\\slash"
        #expect(try await s.keiji("task", "--create", "--name=escapes", "--desc=\(description)", "--command", "true", "--every", "1h").status == 0)
        let text = try await s.keiji("task", "--get", "--name=escapes").stdout
        #expect(!text.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\r" || $0 == "\t" || $0 == "\u{2028}" }, "\(text.debugDescription)")
        #expect(text.contains(#"\#nDescription: red \u{1B}[31mtext\u{1B}]0;title\u{7} and a\nType: fake\r\tthird\u{2028}line, back\slash\#n"#), "\(text)")
        // Every line of the block is one key and its value.
        let keys = text.split(separator: "\n").map { $0.prefix(while: { $0 != ":" }) }
        #expect(keys.filter { $0 == "Type" }.count == 1 && keys.allSatisfy { !$0.isEmpty && !$0.contains(" ") }, "\(text)")
        #expect(try json(try await s.keiji("task", "--get", "--name=escapes", "--json"))["Description"] as? String == description)
    }

    @Test func theTaskSeesItsExactDescription() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let description = "it's fine: \"quoted\", back\\slash, $HOME `id` $(id)\nsecond line é 日本 🎌"
        #expect(try await s.keiji("task", "--create", "--name=echoer", "--desc=\(description)",
                            "--command", "printf %s \"$TASK_DESCRIPTION\" > seen.txt", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("task", "--run", "--name=echoer").status == 0)
        let seen = s.home + "/keiji/tasks/echoer/seen.txt"
        #expect(await eventually { (try? String(contentsOfFile: seen, encoding: .utf8)) == description },
                "\((try? String(contentsOfFile: seen, encoding: .utf8)) ?? "not written")")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    @Test func getJSONUsesRealTypes() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        let none = try? JSONSerialization.jsonObject(with: Data(try await s.keiji("task", "--get", "--json").stdout.utf8))
        #expect((none as? [Any])?.isEmpty == true, "no tasks: an empty JSON list")
        #expect(try await s.keiji("task", "--list", "--json").stdout == "[]\n", "an empty list in one line, as --get's")
        #expect(try await s.keiji("task", "--create", "--name=typed", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("task", "--runs", "--name=typed", "--json").stdout == "[]\n")
        let got = try await s.keiji("task", "--get", "--json", "--name=typed")
        #expect(got.stdout.contains("\"LogPath\" : \"\(s.home)/") && !got.stdout.contains("\\/"), "paths as written, no escaped slashes")
        let object = try json(got)
        #expect(object["Executable"] as? String == "true", "a plain command is exec'd directly, and --get says so")
        #expect(object["ID"] as? Int == 1 && !(object["ID"] is String), "\(object)")
        for flag in ["IsRunning", "IsQueued", "IsError", "IsDisabled"] {
            #expect(object[flag] as? Bool == false && !(object[flag] is String), "\(flag): \(String(describing: object[flag]))")
        }
        #expect(object["LastExecutionTime"] is NSNull, "never ran: null, not \"\"")
        #expect(object["Name"] as? String == "typed" && object["NextExecutionTime"] is String)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(try await s.keiji("task", "--get", "--json").stdout.utf8)) as? [[String: Any]])
        #expect(list.count == 1 && list[0]["IsDisabled"] as? Bool == false)
    }
}
