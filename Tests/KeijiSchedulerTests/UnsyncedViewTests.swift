import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// The running scheduler writes its SQLite view without syncing (the journal is what is durable): it marks the
/// view unsynced, with this boot's ID, while it runs, and a clean stop syncs the view and removes the mark.
struct UnsyncedViewTests {
    @Test func aRunningSchedulerMarksItsViewUnsyncedAndACleanStopSyncsIt() async throws {
        let harness = try SchedulerHarness()
        defer { harness.remove() }
        try await harness.defineOffline(try harness.commandTask("tick", "true"))
        let marker = UnsyncedViewMarker(viewPath: harness.workspace.databaseFile)
        #expect(marker.bootID() == nil, "offline commands keep syncing the view")
        let engine = harness.engine(spawn: false)
        try await engine.start()
        await engine.waitForView()
        #expect(marker.bootID() == UnsyncedViewMarker.currentBootID())
        #expect(await harness.wait { try harness.entries().finishedRuns.count >= 1 })
        await engine.stop()
        #expect(marker.bootID() == nil)
        // A start after the clean stop, in another boot as far as the view can tell, keeps the view.
        let (_, fresh) = try SQLiteViewDatabase.openOrReset(path: harness.workspace.databaseFile, bootID: "a-later-boot")
        #expect(!fresh)
    }
}
