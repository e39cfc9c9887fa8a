import Foundation
import Synchronization
import Testing

@testable import KeijiJournal

/// The journal closes each descriptor exactly once and leaks none, on every failure path. In the scheduler a
/// closed number is soon reused by SQLite or a socket, so a second close would cut someone else's file; the
/// simulated file system never reuses numbers and records an issue on any close of an unknown descriptor.
struct DescriptorTests {
    @Test func aFailedRollThenCloseClosesTheSegmentOnce() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs))
        try await appendPayloads(journal, through: 3)
        // The roll seals and closes the active segment, then cannot create the next one.
        fs.inject { operation in
            if case .create(let path) = operation, path.hasSuffix(".jnl.tmp") { return .fail(ENOSPC) }
            return nil
        }
        await #expect { try await journal.roll() } throws: { ($0 as? JournalError)?.code == .failed }
        await #expect { try await journal.append([1]) } throws: { ($0 as? JournalError)?.code == .failed }
        try await journal.close()
        #expect(fs.descriptorMisuse.isEmpty)
        #expect(fs.openDescriptorCount == 0)
    }

    @Test func aCloseWhoseNoteFailsClosesTheSegmentOnce() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs))
        try await appendPayloads(journal, through: 3)
        fs.inject { operation in
            if case .sync(let path) = operation, path.hasSuffix(".jnl") { return .fail(EIO) }
            return nil
        }
        await #expect { try await journal.close() } throws: { ($0 as? JournalError)?.errno == EIO }
        #expect(fs.descriptorMisuse.isEmpty)
        #expect(fs.openDescriptorCount == 0)
    }

    @Test func aFailedSyncOfTheContinuedTailLeaksNothing() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        try await appendPayloads(journal, through: 5)
        try await journal.close()
        // Reopening continues the unsealed tail; its first act is a sync, which fails.
        fs.inject { operation in
            if case .sync(let path) = operation, path.hasSuffix(".jnl") { return .fail(EIO) }
            return nil
        }
        #expect(throws: JournalError.self) { try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20)) }
        #expect(fs.openDescriptorCount == 0, "the tail segment's descriptor and the lock are released")
        #expect(fs.descriptorMisuse.isEmpty)
        fs.inject(nil)
        let reopened = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        try await reopened.close()
    }

    /// Opening a journal with a torn tail repairs it and rolls to a fresh segment. A crash at every one of
    /// those operations in turn must leave no descriptor open and close none twice.
    @Test func anOpenThatFailsAtAnyStepLeaksNothing() async throws {
        let original = SimulatedFileSystem()
        let options = testOptions(io: original, segmentSize: 1 << 20)
        let journal = try Journal.open(directory: "/j", options: options)
        try await appendPayloads(journal, through: 8)
        try await journal.close()
        let segment = try #require(original.fileNames(in: "/j").first { $0.hasSuffix(".jnl") })
        original.setContents(original.contents(of: "/j/" + segment)! + [0x4B, 0x4A, 1, 2, 3, 4, 5], of: "/j/" + segment)

        let clean = original.crashImages(seed: 0, count: 2)[1]
        try await Journal.open(directory: "/j", options: testOptions(io: clean, segmentSize: 1 << 20)).close()
        let steps = clean.mutatingOperationCount
        #expect(steps > 5, "the repair, the roll and the close all write")

        var failures = 0
        for step in 1...steps {
            let fs = original.crashImages(seed: 0, count: 2)[1]
            fs.crash(atOperation: step)
            do {
                try await Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20)).close()
            } catch {
                failures += 1
            }
            #expect(fs.openDescriptorCount == 0, "crash at operation \(step)")
            #expect(fs.descriptorMisuse.isEmpty, "crash at operation \(step)")
        }
        #expect(failures == steps)
    }
}
