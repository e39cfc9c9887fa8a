import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// A workspace moved or copied to another HOME: its saved definitions name the old HOME's task folders and Swift
/// binaries. It ran the old HOME's scripts there (and `--get` showed the old paths) while those were still there.
struct MovedWorkspaceTests {
    @Test func aTaskSavedInAnotherHomeRunsFromThisWorkspaceAndItsRowSaysSo() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        let oldHome = harness.workspace.root + "-old-home"
        defer { try? FileManager.default.removeItem(atPath: oldHome) }
        let pw = harness.taskName("pw")
        var command = try harness.commandTask("pw", "pwd", every: 3600)
        command.directory = oldHome + "/keiji/tasks/pw"
        try FileSystem.createDirectory(command.directory)  // the old HOME still there: its folder ran, silently
        let sw = harness.taskName("sw")
        var binary = try harness.commandTask("sw", "true", every: 3600)
        binary.directory = oldHome + "/keiji/tasks/sw"
        binary.action = .binary(path: oldHome + "/.keiji/exec/tasks/sw")
        try await harness.defineOffline(command)
        try await harness.defineOffline(binary)
        try await RunNowTests().appendUnchecked([.taskTriggered(pw)], harness)

        let engine = harness.engine()
        try await engine.start()
        let folder = harness.workspace.taskDirectory(pw)
        #expect(await harness.wait { harness.log(of: "pw").contains(folder + "\n") }, "ran in \(folder): \(harness.log(of: "pw"))")
        #expect(await engine.state.tasks[sw]?.definition.action == .binary(path: harness.workspace.executable(for: sw)))
        #expect(await engine.state.tasks[sw]?.definition.directory == harness.workspace.taskDirectory(sw))
        let view = try SQLiteDatabase(path: harness.workspace.databaseFile)
        #expect(await harness.wait {
            try view.rows("SELECT Executable FROM task_models WHERE Name = 'sw'") == [[harness.workspace.executable(for: sw)]]
        }, "the view's row rewritten with this workspace's binary")
        await engine.stop()
    }
}
