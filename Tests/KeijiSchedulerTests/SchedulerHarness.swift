import Foundation
import KeijiCore
import KeijiJournal
import Testing

@testable import KeijiScheduler

/// A scheduler in a temporary HOME, with helpers to define tasks, start the engine and wait for outcomes.
final class SchedulerHarness: @unchecked Sendable {
    let home: String
    let workspace: Workspace
    var settings = Settings()

    init() throws {
        home = FileManager.default.temporaryDirectory.path + "/keiji-sched-" + UUID().uuidString.prefix(8)
        workspace = Workspace(home: home)
        try FileSystem.createDirectory(workspace.tasksDirectory)
        try Settings.defaultFileContents(timeZone: "UTC").write(toFile: workspace.settingsFile, atomically: true, encoding: .utf8)
        settings = try Settings.load(from: workspace.settingsFile)
    }

    func remove() { try? FileManager.default.removeItem(atPath: home) }

    func taskName(_ raw: String) -> TaskName { try! TaskName(raw) }

    /// A command task in its own folder under ~/keiji/tasks.
    func commandTask(_ raw: String, _ command: String, every seconds: Int = 1, configure: (inout RunPolicy) -> Void = { _ in }) throws -> TaskDefinition {
        let name = taskName(raw)
        try FileSystem.createDirectory(workspace.taskDirectory(name))
        var policy = RunPolicy()
        configure(&policy)
        return TaskDefinition(name: name, description: "test \(raw)", action: .command(command),
                              schedule: ScheduleSpec(.every(seconds, .seconds)), policy: policy, directory: workspace.taskDirectory(name))
    }

    func defineOffline(_ definition: TaskDefinition) async throws {
        try await OfflineCommands.submit(.taskSaved(definition, taskID: UUID().uuidString.lowercased()), workspace: workspace, settings: settings)
    }

    func engine(spawn: Bool = true, clock: any SchedulerClock = WallClock(), journalIO: (any JournalIO)? = nil,
                firingLeadMilliseconds: Int64? = nil, firingWindowMilliseconds: Int64? = nil, endedRunsInterval: Duration? = nil,
                heldStartsLimit: Int? = nil, recordLateness: Bool = false, stopDatabaseBound: Duration? = nil,
                recoveryMode: JournalOptions.RecoveryMode = .strict, environment: [String: String]? = nil) -> SchedulerEngine {
        var configuration = SchedulerConfiguration(workspace: workspace, settings: settings)
        if let environment { configuration.environment = environment }
        configuration.spawnProcesses = spawn
        configuration.recordLateness = recordLateness
        configuration.clock = clock
        if let firingLeadMilliseconds { configuration.firingLeadMilliseconds = firingLeadMilliseconds }
        if let firingWindowMilliseconds { configuration.firingWindowMilliseconds = firingWindowMilliseconds }
        if let endedRunsInterval { configuration.endedRunsInterval = endedRunsInterval }
        if let heldStartsLimit { configuration.heldStartsLimit = heldStartsLimit }
        // 60 s unless a test is about the bound: on a loaded machine a view's flush at the stop can take longer than the
        // scheduler's 5 s, and the stop then leaves the view unsynced by design (UnsyncedViewTests saw it once).
        configuration.stopDatabaseBound = stopDatabaseBound ?? .seconds(60)
        if let journalIO { configuration.journalOptions.io = journalIO }
        configuration.journalOptions.recoveryMode = recoveryMode
        configuration.shutdownGrace = .seconds(2)
        configuration.viewFlushInterval = .milliseconds(50)
        return SchedulerEngine(configuration: configuration)
    }

    /// Polls `condition` until it holds or `timeout` passes (a throwing check counts as not yet). The default
    /// is generous for a loaded 2-core machine; it returns as soon as the condition holds.
    func wait(upTo timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return (try? await condition()) == true
    }

    /// Waits until `count` runs have ended in the journal and `engine` has let go of them: it does so just after a
    /// run's `run.finished` is durable, and a `--run` of a skip task is refused until then.
    func waitForRunsEnded(_ count: Int, by engine: SchedulerEngine) async -> Bool {
        await wait {
            guard try entries().finishedRuns.count >= count else { return false }
            return await engine.runsInProgress == 0
        }
    }

    func log(of raw: String) -> String {
        (try? String(contentsOfFile: workspace.taskLogFile(taskName(raw)), encoding: .utf8)) ?? ""
    }

    /// Every record in the journal (read-only; safe while a scheduler runs).
    func entries() throws -> [JournalEntry] {
        try JournalDirectory(path: workspace.journalDirectory).records().map { try JournalEntry.decode($0.bytes) }
    }

    /// Processes whose environment carries `KEIJI_RUN_ID=<id>`.
    func processes(ofRun runID: String) -> [Int32] {
        let needle = "KEIJI_RUN_ID=" + runID
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { return nil }
            guard LiveProcess.isRunning(pid) else { return nil }  // zombies are gone for every purpose that matters here
            return Array(data).split(separator: 0).contains { Array($0) == Array(needle.utf8) } ? pid : nil
        }
    }
}

extension Array where Element == JournalEntry {
    var finishedRuns: [RunEnd] { compactMap { if case .runFinished(let end) = $0.event { end } else { nil } } }
    var startedRuns: [RunStart] { compactMap { if case .runStarted(let start) = $0.event { start } else { nil } } }
    func missedRuns(_ reason: RunMissed.Reason) -> [RunMissed] {
        compactMap { if case .runMissed(let missed) = $0.event, missed.reason == reason { missed } else { nil } }
    }
}

extension SchedulerHarness {
    /// Starts the real `keiji-scheduler` in this harness's HOME, its output discarded; the caller stops it.
    func startScheduler() throws -> Process {
        let binary = try #require(schedulerBinary(), "keiji-scheduler is built with the tests")
        let scheduler = Process()
        scheduler.executableURL = URL(fileURLWithPath: binary)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = home
        scheduler.environment = environment
        scheduler.standardOutput = FileHandle.nullDevice
        scheduler.standardError = FileHandle.nullDevice
        try scheduler.run()
        return scheduler
    }
}

extension SchedulerHarness {
    /// Makes this harness's scheduler node `node-a` of a cluster on a fresh database of the test PostgreSQL server
    /// (`KEIJI_TEST_POSTGRES_URL`, set by scripts/test-postgres); returns the database's URL.
    func joinTestCluster() throws -> URL {
        let server = try #require(Self.testPostgresServer, "KEIJI_TEST_POSTGRES_URL is not set: scripts/test starts the server")
        let database = "keiji_sched_" + UUID().uuidString.prefix(8).lowercased()
        _ = try PostgresConnection(url: server).query("CREATE DATABASE \(database)")
        var components = try #require(URLComponents(url: server, resolvingAgainstBaseURL: false))
        components.path = "/" + database
        let url = try #require(components.url)
        try (Settings.defaultFileContents(timeZone: "UTC").replacingOccurrences(of: "\nDB_URL=default\n", with: "\nDB_URL=\(url.absoluteString)\n")
             + "\nNODE_NAME=node-a\n")
            .write(toFile: workspace.settingsFile, atomically: true, encoding: .utf8)
        settings = try Settings.load(from: workspace.settingsFile)
        return url
    }

    /// Drops the database ``joinTestCluster()`` made.
    func dropTestCluster(_ url: URL) {
        guard let server = Self.testPostgresServer else { return }
        _ = try? PostgresConnection(url: server).query("DROP DATABASE IF EXISTS \(url.path.dropFirst()) WITH (FORCE)")
    }

    private static var testPostgresServer: URL? { ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"].flatMap(URL.init(string:)) }
}

/// The real journal I/O with a say before every `sync` (``beforeSync()``, which throws to fail it): tests hold a
/// batch back (``HeldSyncJournalIO``) or make the disk fail (``FailingSyncJournalIO``) with it; and before every
/// write (``beforeWrite()``), to fill the disk (``FullDiskJournalIO``).
class InterceptedSyncJournalIO: JournalIO, @unchecked Sendable {  // subclasses keep their state in a Mutex
    /// The real I/O, pinned to the journal's directory once the journal opens (before any other call of it).
    private var real: any JournalIO = PosixJournalIO()

    /// Pins the real I/O and keeps the interception: the journal goes on calling this object.
    final func pinned(to directory: String) throws -> any JournalIO {
        real = try PosixJournalIO().pinned(to: directory)
        return self
    }

    func beforeSync() throws {}
    func beforeWrite() throws {}

    final func sync(_ file: FileDescriptor) throws {
        try beforeSync()
        try real.sync(file)
    }

    final func createDirectory(_ path: String) throws { try real.createDirectory(path) }
    final func listDirectory(_ path: String) throws -> [String] { try real.listDirectory(path) }
    final func open(_ path: String, mode: FileOpenMode) throws -> FileDescriptor { try real.open(path, mode: mode) }
    final func close(_ file: FileDescriptor) { real.close(file) }
    final func size(of file: FileDescriptor) throws -> Int { try real.size(of: file) }
    final func read(_ file: FileDescriptor, at offset: Int, count: Int) throws -> [UInt8] { try real.read(file, at: offset, count: count) }
    final func write(_ file: FileDescriptor, _ bytes: [UInt8], at offset: Int) throws {
        try beforeWrite()
        try real.write(file, bytes, at: offset)
    }
    final func truncate(_ file: FileDescriptor, to size: Int) throws { try real.truncate(file, to: size) }
    final func rename(_ source: String, to destination: String) throws { try real.rename(source, to: destination) }
    final func remove(_ path: String) throws { try real.remove(path) }
    final func syncDirectory(_ path: String) throws { try real.syncDirectory(path) }
    final func lockDirectory(_ path: String) throws -> [FileDescriptor]? { try real.lockDirectory(path) }
}

