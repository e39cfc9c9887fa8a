import Foundation
import Testing

@testable import KeijiJournal

/// A journal whose directory is moved away or deleted while it is open (a user's `mv ~/.keiji ~/.keiji.bak` or
/// `rm -rf ~/.keiji` under a running scheduler) writes only where it was opened: by path, its clean-stop checkpoint
/// landed in the journal made at the same path since, whose next recovery then loaded the other workspace's state.
struct MovedDirectoryTests {
    func files(in path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    @Test func aJournalMovedAwayWritesItsSegmentsAndCheckpointsWhereItWentNotIntoTheNewOne() async throws {
        let root = TemporaryDirectory("moved")
        defer { root.remove() }
        let path = root.path + "/journal", moved = root.path + "/journal.moved"
        let old = try Journal.open(directory: path, options: testOptions())
        try await appendPayloads(old, through: 5)
        try await old.writeCheckpoint([2], at: 2)
        #expect(rename(path, moved) == 0)

        let new = try Journal.open(directory: path, options: testOptions())
        try await appendPayloads(new, through: 3)
        try await new.writeCheckpoint([1], at: 1)
        let newFiles = try files(in: path)

        try await appendPayloads(old, through: 8)
        try await old.roll()
        try await old.writeCheckpoint([8], at: 8)
        _ = try await old.compact()
        try await old.close()
        #expect(try files(in: path) == newFiles, "nothing of the moved journal's lands in the new one, nothing of it is deleted")
        #expect(try files(in: moved).filter { $0.hasSuffix(".ckpt") } == [CheckpointFile.fileName(lsn: 2), CheckpointFile.fileName(lsn: 8)])

        try await new.close()
        let reopenedNew = try Journal.open(directory: path, options: testOptions())
        #expect(reopenedNew.latestCheckpoint?.snapshot == [1] && reopenedNew.lastLSN == 3)
        try await reopenedNew.close()
        let reopenedOld = try Journal.open(directory: moved, options: testOptions())
        #expect(reopenedOld.latestCheckpoint?.snapshot == [8] && reopenedOld.lastLSN == 8)
        #expect(try verifiedLSNs(reopenedOld.contents, from: 3).last == 8)
        try await reopenedOld.close()
    }

    @Test func aJournalWhoseDirectoryWasDeletedFailsItsCheckpointAndLeavesTheNewOneAlone() async throws {
        let root = TemporaryDirectory("deleted")
        defer { root.remove() }
        let path = root.path + "/journal"
        let old = try Journal.open(directory: path, options: testOptions())
        try await appendPayloads(old, through: 5)
        try FileManager.default.removeItem(atPath: path)

        let new = try Journal.open(directory: path, options: testOptions())
        try await appendPayloads(new, through: 2)
        let newFiles = try files(in: path)

        await #expect(throws: JournalError.self) { try await old.writeCheckpoint([5], at: 5) }
        try? await old.close()
        #expect(try files(in: path) == newFiles)
        try await new.close()
        let reopened = try Journal.open(directory: path, options: testOptions())
        #expect(reopened.recovery.checkpointLSN == nil && reopened.lastLSN == 2)
        try await reopened.close()
    }
}
