import Foundation
import KeijiCore
import Testing

/// A query view whose file is damaged (here overwritten with text, its WAL gone: a WAL holding every page would
/// be read instead, and the next checkpoint would write them back): a CLI read meets it, and with no scheduler
/// running the view is set aside and rebuilt from the journal at once; the command says so, exits non-zero, and
/// works when run again (`system --status` too). With a scheduler running, it says to restart it, and the restart rebuilds the view.
struct ViewRepairTests {
    typealias Session = WalkthroughTests.Session

    @Test func aDamagedViewIsRebuiltByTheNextCommandOrTheSchedulersRestart() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        var r = try await s.keiji("task", "--create", "--name=alpha", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let view = s.home + "/.keiji/db/keiji.db"
        func damage() throws {
            try Data("this is not a database".utf8).write(to: URL(fileURLWithPath: view))
            for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: view + suffix) {
                try FileManager.default.removeItem(atPath: view + suffix)
            }
        }
        try damage()

        r = try await s.keiji("task", "--list")
        #expect(r.status == 1 && r.stderr.contains("set aside (keiji.db.damaged) and rebuilt from the journal, run the command again"),
                "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: view + ".damaged"))
        r = try await s.keiji("task", "--list")
        #expect(r.status == 0 && r.stdout.contains("alpha"), "\(r.stdout)\(r.stderr)")
        // `system --status` meets it as `--list` does: it said `"tasks": []`, exit 0, of a journal holding a task.
        try FileManager.default.removeItem(atPath: view + ".damaged")
        try damage()
        r = try await s.keiji("system", "--status", "--json")
        #expect(r.status == 1 && r.stdout.isEmpty && r.stderr.split(separator: "\n").count == 1
                    && r.stderr.contains("set aside (keiji.db.damaged) and rebuilt from the journal, run the command again"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--status", "--json")
        let tasks = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["tasks"] as? [[String: Any]]
        #expect(r.status == 0 && tasks?.map { $0["name"] as? String } == ["alpha"], "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("task", "--create", "--name=beta", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")

        #expect(try await s.keiji("system", "--start").status == 0)
        try FileManager.default.removeItem(atPath: view + ".damaged")
        try damage()
        r = try await s.keiji("task", "--get", "--name=alpha")
        #expect(r.status == 1 && r.stderr.contains("restart the scheduler to rebuild it"), "\(r.stdout)\(r.stderr)")
        // `--status` fails the same way, having said first what the services do (it said nothing of them).
        r = try await s.keiji("system", "--status")
        #expect(r.status == 1 && r.stderr.contains("restart the scheduler to rebuild it")
                    && r.stdout.split(separator: "\n").contains { $0.hasPrefix("scheduler") && $0.contains("ONLINE") }, "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
        #expect(try await s.keiji("system", "--start").status == 0)
        r = try await s.keiji("task", "--list")
        #expect(r.status == 0 && r.stdout.contains("alpha") && r.stdout.contains("beta"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A view that is missing while the journal holds tasks (a journal restored alone, a deleted `keiji.db`) is
    /// rebuilt before a task command reads it: read as empty, it listed no tasks, and `--create` without `--force`
    /// saved over a task the journal has; `system --status` listed none. With a scheduler running, the command says
    /// to restart it.
    @Test func aMissingViewIsRebuiltFromTheJournalBeforeACommandReadsIt() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        var r = try await s.keiji("task", "--create", "--name=alpha", "--desc=nightly", "--command", "true", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let view = s.home + "/.keiji/db/keiji.db"
        func remove() throws {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: view + suffix) {
                try FileManager.default.removeItem(atPath: view + suffix)
            }
        }
        try remove()
        r = try await s.keiji("task", "--create", "--name=alpha", "--desc=oops", "--command", "true", "--every", "1h")
        #expect(r.status == 1 && r.stderr.contains("was missing: rebuilt from the journal") && r.stderr.contains("already exists"),
                "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("task", "--get", "--name=alpha")
        #expect(r.status == 0 && r.stdout.contains("nightly") && !r.stdout.contains("oops"), "\(r.stdout)\(r.stderr)")
        // `system --status` lists the journal's tasks too.
        try remove()
        r = try await s.keiji("system", "--status")
        #expect(r.status == 0 && r.stderr.contains("was missing: rebuilt from the journal") && r.stdout.contains("alpha"),
                "\(r.stdout)\(r.stderr)")

        #expect(try await s.keiji("system", "--start").status == 0)
        try remove()
        r = try await s.keiji("task", "--list")
        #expect(r.status == 1 && r.stderr.contains("is missing: restart the scheduler"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("system", "--status")
        #expect(r.stderr.contains("is missing: restart the scheduler"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
        r = try await s.keiji("task", "--list")
        #expect(r.status == 0 && r.stdout.contains("alpha"), "\(r.stdout)\(r.stderr)")
    }

    /// A `keiji.db` keiji did not make (the Go keiji's own database at the same path, as after an upgrade, or an empty
    /// file): every task command printed SQLite's "no such column"/"no such table", and a write or a scheduler start
    /// created keiji's tables beside the foreign `task_models` and took the file for a current view. It is set
    /// aside and rebuilt from the journal as a damaged view is.
    @Test func aDatabaseKeijiDidNotMakeIsSetAsideAndRebuilt() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=alpha", "--desc=nightly", "--command", "true", "--every", "1h").status == 0)
        let view = s.home + "/.keiji/db/keiji.db"
        func replace(goKeiji: Bool) throws {
            // A `.damaged` set aside before stays: the next is set aside over it (it kept the file from moving).
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: view + suffix) {
                try FileManager.default.removeItem(atPath: view + suffix)
            }
            if goKeiji {
                try SQLiteDatabase(path: view).execute("""
                    CREATE TABLE task_models (id integer PRIMARY KEY, task_id text, name text, slug text, is_running numeric);
                    INSERT INTO task_models (task_id, name, slug) VALUES ('x', 'ping_google', 'ping_google')
                    """)
            } else {
                #expect(FileManager.default.createFile(atPath: view, contents: Data()))
            }
        }
        for goKeiji in [true, false] {
            try replace(goKeiji: goKeiji)
            var r = try await s.keiji("task", "--list")
            #expect(r.status == 1 && r.stderr.contains("is not a keiji query view") && r.stderr.contains("rebuilt from the journal"),
                    "\(goKeiji) \(r.stdout)\(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: view + ".damaged"))
            r = try await s.keiji("task", "--list")
            #expect(r.status == 0 && r.stdout.contains("alpha") && !r.stdout.contains("ping_google"), "\(goKeiji) \(r.stdout)\(r.stderr)")
        }
        // A write meets it first: set aside before the command's checks read it.
        try replace(goKeiji: true)
        var r = try await s.keiji("task", "--disable", "--name=alpha")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("task", "--get", "--name=alpha", "--json")
        #expect(r.status == 0 && r.stdout.contains("\"IsDisabled\" : true"), "\(r.stdout)\(r.stderr)")
    }

    /// A view that has applied more than the journal holds is the one trace of acknowledged records the journal
    /// lost (here its newest segment deleted after a checkpoint): an offline command refuses to write over it (it
    /// reused the lost LSNs, and the trace was gone), and the scheduler's start rebuilds the view and reports the
    /// loss; both were silent.
    @Test func aViewAheadOfTheJournalIsReportedNotWrittenOver() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["a", "b"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }
        #expect(try await s.keiji("journal", "compact").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=c", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        let journal = s.home + "/.keiji/journal"
        for file in try FileManager.default.contentsOfDirectory(atPath: journal) where file.hasPrefix("seg-") {
            try FileManager.default.removeItem(atPath: journal + "/" + file)
        }
        var r = try await s.keiji("task", "--create", "--name=d", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 1 && r.stderr.contains("the query view had applied LSN 3 but the journal ends at LSN 2")
                && r.stderr.contains("nothing was written"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--start").status == 0)
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("LOST:") && r.stdout.contains("records 3…3 are missing from the journal"), "\(r.stdout)")
        r = try await s.keiji("system", "--status", "--json")
        let recovery = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["recovery"] as? [String: Any]
        #expect(recovery?["viewAheadOfJournalAt"] as? Int == 3, "\(r.stdout)")
        #expect(try await s.keiji("task", "--get", "--name=c").status == 1)
        #expect(try await s.keiji("task", "--create", "--name=d", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A view a command behind the journal (an offline command killed between its append and its view update)
    /// does not let `--create` without `--force` replace the task it has not shown yet: the journal decides.
    @Test func aCreateIsCheckedAgainstTheJournalNotOnlyAViewBehindIt() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=u", "--desc=first", "--command", "true", "--every", "1h").status == 0)
        // The view as the kill left it: without u's row, one LSN behind.
        let view = try SQLiteDatabase(path: s.home + "/.keiji/db/keiji.db")
        try view.execute("DELETE FROM task_models WHERE Name = 'u'; UPDATE applied_lsn SET lsn = lsn - 1")
        var r = try await s.keiji("task", "--create", "--name=u", "--desc=second", "--command", "true", "--every", "5m")
        #expect(r.status == 1 && r.stderr.contains("task u already exists; use --force"), "\(r.stdout)\(r.stderr)")
        r = try await s.keiji("task", "--get", "--name=u", "--json")
        #expect(r.status == 0 && r.stdout.contains("\"first\"") && !r.stdout.contains("second"), "\(r.stdout)\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.home + "/keiji/tasks/u/.env"), "the refused create put the folder back")
    }
}
