import Foundation
import Testing

@testable import KeijiJournal

/// Any write or sync error stops the journal: nothing later is acknowledged, and a restart recovers exactly
/// the acknowledged prefix (PostgreSQL's fsyncgate lesson: a failed fsync is never retried).
struct FailStopTests {
    /// Appends until one fails; returns the LSNs acknowledged before it.
    func appendUntilFailure(_ journal: Journal, limit: UInt64 = 40) async -> (acknowledged: [UInt64], error: JournalError?) {
        var acknowledged: [UInt64] = []
        for lsn in 1...limit {
            do {
                acknowledged.append(try await journal.append(payload(for: lsn)))
            } catch {
                return (acknowledged, error as? JournalError)
            }
        }
        return (acknowledged, nil)
    }

    @Test(arguments: [EIO, ENOSPC])
    func failedSyncStopsTheJournal(_ code: Int32) async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs))
        let failOnSync = Mutex(0)
        fs.inject { operation in
            guard case .sync(let path) = operation, path.hasSuffix(".jnl") else { return nil }
            return failOnSync.withLock { count in
                count += 1
                return count == 6 ? .fail(code) : nil
            }
        }
        let (acknowledged, error) = await appendUntilFailure(journal)
        #expect(error?.code == .failed && error?.errno == code)
        #expect(acknowledged.count == 5, "the append whose sync failed is not acknowledged")
        fs.inject(nil)
        // Even with the file system healthy again, nothing more is acknowledged: the sync is never retried.
        await #expect { try await journal.append([1]) } throws: { ($0 as? JournalError)?.code == .failed }
        await #expect { try await journal.writeCheckpoint([], at: 1) } throws: { ($0 as? JournalError)?.code == .failed }
        try await journal.close()

        // Restart from what is durable: exactly the acknowledged prefix.
        let durable = fs.crashImages(seed: 1, count: 2)[0]
        let (_, lsns) = try await openAndRead(durable)
        #expect(lsns == acknowledged)
        // From everything written: the same, since the frames of the append whose sync failed were cut (the kernel
        // could have written them later, and the next open replayed an append reported failed).
        let written = fs.crashImages(seed: 1, count: 2)[1]
        let (_, all) = try await openAndRead(written)
        #expect(all == acknowledged)
    }

    /// The writer cuts a partial write back itself; only when that cut fails too is a torn tail left, which the next
    /// open cuts.
    @Test(arguments: [false, true])
    func partialWriteThenENOSPCLeavesNothingOrATornTailThatRecoveryCuts(_ cutFails: Bool) async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs, segmentSize: 1 << 20))
        let writes = Mutex(0)
        fs.inject { operation in
            if cutFails, case .truncate = operation { return .fail(ENOSPC) }
            guard case .write(let path, _, let count) = operation, path.hasSuffix(".jnl"), count > 40 else { return nil }
            return writes.withLock { n in
                n += 1
                return n == 8 ? .partialWrite(37, ENOSPC) : nil
            }
        }
        let (acknowledged, error) = await appendUntilFailure(journal)
        #expect(error?.code == .failed && error?.errno == ENOSPC)
        #expect(acknowledged == Array(1...7))
        #expect(error?.message.contains("may still be in the journal") == cutFails, "\(String(describing: error))")
        try await journal.close()
        fs.inject(nil)
        let (info, lsns) = try await openAndRead(fs.crashImages(seed: 2, count: 2)[1])
        #expect(lsns == acknowledged)
        if cutFails {
            #expect(info.repairs.map(\.kind) == [.tornTailTruncated], "the 37 torn bytes are quarantined and cut")
            #expect(info.repairs.first?.bytes == 37)
        } else {
            #expect(info.repairs.isEmpty, "\(info.repairs)")
        }
    }

    @Test func failedRollStopsTheJournalAfterAnsweringTheBatch() async throws {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(directory: "/j", options: testOptions(io: fs))
        fs.inject { operation in
            if case .rename(_, let target) = operation, target.hasSuffix(".jnl") { return .fail(EIO) }
            return nil
        }
        let (acknowledged, error) = await appendUntilFailure(journal)
        #expect(error?.code == .failed)
        try await journal.close()
        fs.inject(nil)
        let (_, lsns) = try await openAndRead(fs.crashImages(seed: 3, count: 2)[0])
        #expect(Array(lsns.prefix(acknowledged.count)) == acknowledged, "every acknowledged record survives the failed roll")
    }
}

import Synchronization
