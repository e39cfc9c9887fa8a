import Foundation
import Testing

/// A query view whose file is damaged (here overwritten with text, its WAL gone: a WAL holding every page would
/// be read instead, and the next checkpoint would write them back): a CLI read meets it, and with no scheduler
/// running the view is set aside and rebuilt from the journal at once; the command says so, exits non-zero, and
/// works when run again. With a scheduler running, it says to restart it, and the restart rebuilds the view.
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
        r = try await s.keiji("task", "--create", "--name=beta", "--desc=x", "--command", "true", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")

        #expect(try await s.keiji("system", "--start").status == 0)
        try FileManager.default.removeItem(atPath: view + ".damaged")
        try damage()
        r = try await s.keiji("task", "--get", "--name=alpha")
        #expect(r.status == 1 && r.stderr.contains("restart the scheduler to rebuild it"), "\(r.stdout)\(r.stderr)")
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
        #expect(r.stdout.contains("is missing: restart the scheduler"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--stop").status == 0)
        r = try await s.keiji("task", "--list")
        #expect(r.status == 0 && r.stdout.contains("alpha"), "\(r.stdout)\(r.stderr)")
    }
}
