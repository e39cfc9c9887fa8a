import Foundation
import Synchronization

/// A crash-safe, append-only, LZ4-compressed record log: the single source of truth the scheduler replays.
///
/// ```swift
/// let journal = try Journal.open(directory: "/home/me/.keiji/journal")
/// print(journal.recovery.repairs)                      // what opening had to fix, if anything
/// let lsn = try await journal.append(Array("hello".utf8)) // returns once the record is durable
/// try await journal.close()
/// ```
///
/// - Only one process may have a journal open (exclusive `flock`s on its directory and its `LOCK` file); a second open throws
///   `.locked`.
/// - Appends from any number of tasks are group-committed: one fdatasync per batch, one batch in flight. An
///   append that finds the journal idle writes and syncs on the caller's thread (blocking it for the sync);
///   the others wait for the next batch without blocking.
/// - After any write or sync error every later call throws `.failed`; reopen to recover (fail-stop).
/// - Records are opaque bytes; the journal knows nothing of what they mean.
public final class Journal: Sendable {
    public let directory: String
    public let options: JournalOptions
    /// What opening found and repaired, and the checkpoints set aside since because their owner could not read them
    /// (``loadNewestReadableCheckpoint(_:)``).
    public var recovery: RecoveryInfo { recoveryInfo.withLock { $0 } }
    /// Repairs earlier opens made (a CLI command, `keiji journal compact`, a start that refused) that no recovery
    /// report has listed yet. ``recovery``'s own repairs are kept with them until ``markRepairsReported()``.
    public let earlierRepairs: [UnreportedRepair]

    let recoveryInfo: Mutex<RecoveryInfo>
    private let committer: GroupCommitter
    let shared: JournalSharedState
    private let directoryLocks: [FileDescriptor]
    private let isClosed = Atomic<Bool>(false)
    let checkpointInProgress = Atomic<Bool>(false)

    /// Opens (creating if needed) the journal in `directory`, running recovery first.
    ///
    /// - Throws: `.locked` if another process has it open; `.corruption` (in `strict` mode) if acknowledged
    ///   data is damaged, naming the segment and offset; `.io` for file-system failures.
    public static func open(directory: String, options: JournalOptions = JournalOptions()) throws -> Journal {
        guard options.maxRecordSize > 0, options.maxBatchBytes > 0, options.segmentSize > SegmentHeader.size,
            options.maxFramePayload <= SegmentScanner.payloadHardLimit,
            (0...SegmentScanner.payloadHardLimit).contains(options.preallocationBytes)
        else {
            throw JournalError(.invalidArgument, "journal options out of range (record, batch and segment sizes must be positive; frames and preallocation at most 256 MiB)")
        }
        try options.io.createDirectory(directory)
        // Everything from here on (the lock, recovery, appends, checkpoints, compaction) goes through the directory
        // opened now: a scheduler whose workspace was deleted or moved must not write into the next one's journal.
        var options = options
        options.io = try options.io.pinned(to: directory)
        let io = options.io
        guard let directoryLocks = try io.lockDirectory(directory) else {
            throw JournalError(.locked, "the journal in \(directory) is in use by another process (is keiji-scheduler running?)")
        }
        // Every failure below releases what was opened so far: the segment's descriptor and the lock.
        var opened: SegmentWriter?
        do {
            var outcome = try JournalRecovery(io: io, directory: directory, options: options).run()
            let writer: SegmentWriter
            if let tail = outcome.segments.last, !tail.sealed {
                writer = try SegmentWriter(continuing: tail, options: options, directory: directory,
                                           highestSegmentID: outcome.highestSegmentID)
                opened = writer
                // A repaired tail is sealed where the repair left it; appends go to a fresh segment.
                if !outcome.tailIsAppendable { try writer.roll() }
            } else {
                let base = outcome.segments.last?.nextLSN ?? ((outcome.checkpoint?.lsn ?? 0) + 1)
                writer = try SegmentWriter(startingAt: base, after: outcome.segments.last, options: options,
                                           directory: directory, highestSegmentID: outcome.highestSegmentID)
                opened = writer
            }
            if !outcome.salvaged.isEmpty {
                try writer.appendSalvaged(outcome.salvaged)
                try writer.writeNote(.idle)
                outcome.info.lastLSN = writer.lastLSN
            }
            if let through = outcome.bridgeThrough, through > writer.lastLSN {
                // After any salvaged records: they keep their LSNs, and the gap covers only what is still missing.
                try writer.skip(through: through)
                outcome.info.lastLSN = writer.lastLSN
            }
            return Journal(directory: directory, options: options, recovery: outcome.info, earlierRepairs: outcome.earlierRepairs,
                           writer: writer, checkpoint: outcome.checkpoint, directoryLocks: directoryLocks)
        } catch {
            opened?.abandon()
            directoryLocks.forEach(io.close)
            throw error
        }
    }

    private init(
        directory: String, options: JournalOptions, recovery: RecoveryInfo, earlierRepairs: [UnreportedRepair],
        writer: SegmentWriter, checkpoint: Checkpoint?, directoryLocks: [FileDescriptor]
    ) {
        self.directory = directory
        self.options = options
        recoveryInfo = Mutex(recovery)
        self.earlierRepairs = earlierRepairs
        self.directoryLocks = directoryLocks
        shared = JournalSharedState()
        shared.setCheckpoint(checkpoint)
        committer = GroupCommitter(writer: writer, options: options, shared: shared)
    }

    /// The last acknowledged LSN (durable in `sync` mode); 0 when the journal is empty.
    public var lastLSN: UInt64 { shared.snapshot.lastLSN }
    /// The last LSN known to be on stable storage.
    public var durableLSN: UInt64 { shared.snapshot.durableLSN }
    /// The newest checkpoint, loaded at open or written since.
    public var latestCheckpoint: Checkpoint? { shared.snapshot.checkpoint }

    /// Appends one record and returns its LSN once it is durable (per ``JournalOptions/durability``).
    public func append(_ record: [UInt8]) async throws -> UInt64 {
        try check(record)
        return try await commit([record])
    }

    /// Appends records as one batch: they get consecutive LSNs and are acknowledged together, after one sync.
    /// A batch larger than ``JournalOptions/maxBatchBytes`` spans several frames; if the process dies before
    /// the acknowledgement, recovery may keep a prefix of it (never a record out of order).
    public func append(contentsOf records: [[UInt8]]) async throws -> ClosedRange<UInt64> {
        guard !records.isEmpty else { throw JournalError(.invalidArgument, "cannot append an empty batch") }
        for record in records { try check(record) }
        let first = try await commit(records)
        return first...(first + UInt64(records.count) - 1)
    }

    /// Stores `snapshot` as the owner's state at `lsn`, atomically, and deletes the checkpoint files older than the
    /// previous one, which is kept for recovery to fall back to if this one is found damaged.
    /// Records up to `lsn` are synced first, so a checkpoint never covers data that could still be lost.
    ///
    /// The file (megabytes for a large state) is written and synced on a thread of its own, not the writer
    /// thread, so appends keep flowing meanwhile. An I/O error still stops the journal (fail-stop).
    public func writeCheckpoint(_ snapshot: [UInt8], at lsn: UInt64) async throws {
        guard !checkpointInProgress.exchange(true, ordering: .acquiringAndReleasing) else {
            throw JournalError(.invalidArgument, "a checkpoint is already being written")
        }
        defer { checkpointInProgress.store(false, ordering: .releasing) }
        let now = try await perform { writer in
            guard lsn <= writer.lastLSN else {
                throw JournalError(.invalidArgument, "cannot checkpoint at LSN \(lsn): the journal ends at \(writer.lastLSN)")
            }
            if writer.hasUnsyncedRecords { try writer.sync() }
            return writer.options.now()
        }
        let checkpoint = Checkpoint(lsn: lsn, createdNanoseconds: now, snapshot: snapshot)
        let (io, directory, shared) = (options.io, self.directory, self.shared)
        let outcome: Result<Void, any Error> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: Result {
                    let fileName = CheckpointFile.fileName(lsn: lsn)
                    try io.writeAtomically(CheckpointFile.encode(checkpoint), to: directory + "/" + fileName, directory: directory)
                    let entries = try io.listDirectory(directory)
                    let previous = CheckpointFile.previousLSN(below: lsn, in: entries) ?? 0
                    let older = entries.filter { name in
                        CheckpointFile.lsn(fromFileName: name).map { $0 < previous } ?? false
                    }
                    for name in older { try io.remove(directory + "/" + name) }
                    if !older.isEmpty { try io.syncDirectory(directory) }
                    shared.setCheckpoint(checkpoint)
                })
            }
        }
        if case .failure(let error) = outcome {
            // Fail-stop, as for any other write or sync error, and tell the caller.
            try await perform { _ in throw error }
        }
    }

    /// Deletes segments wholly covered by the previous checkpoint (the one before the latest), beyond
    /// ``JournalOptions/retention``: recovery falls back to it when the latest fails its checksum, and replays the
    /// segments after it. With one checkpoint, nothing is deleted. The active segment is never deleted; every older
    /// one is sealed (rolling seals before it creates the next).
    @discardableResult
    public func compact() async throws -> CompactionResult {
        let latestLSN = shared.snapshot.checkpoint?.lsn
        let directory = self.directory
        return try await perform { writer in
            guard let latestLSN,
                let previousLSN = CheckpointFile.previousLSN(below: latestLSN, in: try writer.io.listDirectory(directory))
            else { return CompactionResult(removed: [], bytesFreed: 0) }
            let set = SegmentSet(io: writer.io, directory: directory, naming: JournalSegmentNaming())
            let names = try set.list()
            var covered: [(name: SegmentName, createdNanoseconds: UInt64)] = []
            for (index, name) in names.enumerated().dropLast() where name != writer.name {
                guard names[index + 1].baseLSN - 1 <= previousLSN else { break }
                var created: UInt64 = 0
                if writer.options.retention.age != nil {
                    let file = try writer.io.open(set.path(of: name), mode: .readOnly)
                    defer { writer.io.close(file) }
                    created = (try? SegmentHeader.decode(try writer.io.read(file, at: 0, count: SegmentHeader.size)).get())?.createdNanoseconds ?? 0
                }
                covered.append((name, created))
            }
            let removable = SegmentSet<JournalSegmentNaming>.removable(covered, retention: writer.options.retention, now: writer.options.now())
            var freed = 0
            for name in removable {
                let file = try writer.io.open(set.path(of: name), mode: .readOnly)
                freed += (try? writer.io.size(of: file)) ?? 0
                writer.io.close(file)
            }
            try set.remove(removable)
            return CompactionResult(removed: removable, bytesFreed: freed)
        }
    }

    /// Forgets the recorded repairs (``earlierRepairs`` and ``recovery``'s): call it once a durable report lists them.
    /// Until then every open keeps them, so a crash before the report loses none. Only an open writes the file, and
    /// this journal holds the lock, so no writer thread is needed; a failure here leaves the journal working.
    public func markRepairsReported() throws {
        try UnreportedRepairsFile.clear(io: options.io, directory: directory)
    }

    /// Seals the active segment and starts a new one now.
    public func roll() async throws {
        try await perform { writer in try writer.roll() }
    }

    /// Waits for pending appends, writes a clean-close note, syncs, and releases the lock. Idempotent.
    ///
    /// - Important: a journal that is never closed keeps its writer thread and lock until the process exits.
    public func close() async throws {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        defer { directoryLocks.forEach(options.io.close) }
        try await withUnsafeThrowingContinuation { continuation in
            committer.submit(.close(continuation))
        }
    }

    /// A read-only view of this journal's files, bounded to what has been acknowledged.
    public var contents: JournalDirectory {
        let snapshot = shared.snapshot
        return JournalDirectory(path: directory, io: options.io, upperBound: snapshot.lastLSN, activeSegmentEnd: snapshot.activeSegmentEnd)
    }

    // MARK: - Private

    private func check(_ record: [UInt8]) throws {
        guard record.count <= options.maxRecordSize else {
            throw JournalError(.recordTooLarge, "record of \(record.count) bytes exceeds the journal's limit of \(options.maxRecordSize) bytes")
        }
    }

    /// Leads the commit on this thread when the journal is idle (no hand-off, no suspension), else queues.
    private func commit(_ records: [[UInt8]]) async throws -> UInt64 {
        let submitted = monotonicNanoseconds()
        if let first = try committer.appendIfIdle(records, submitted: submitted) { return first }
        return try await withUnsafeThrowingContinuation { continuation in
            committer.submit(.append(records, submitted, continuation))
        }
    }

    private func perform<T: Sendable>(_ body: @escaping @Sendable (SegmentWriter) throws -> T) async throws -> T {
        let result = Mutex<T?>(nil)
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            committer.submit(.control({ writer in
                let value = try body(writer)
                result.withLock { $0 = value }
            }, continuation))
        }
        return result.withLock { $0! }
    }
}

/// What ``Journal/compact()`` removed.
public struct CompactionResult: Sendable, Equatable {
    public var removed: [SegmentName]
    public var bytesFreed: Int
}
