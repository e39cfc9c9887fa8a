import Foundation

/// Why the journal's owner cannot read a checkpoint's snapshot, in one line: it verifies (its checksum is right) but
/// was written by a newer version of the owner, or by a bug. Thrown by the `read` closure of
/// ``Journal/loadNewestReadableCheckpoint(_:)``; the journal checks checksums only, so only the owner can tell.
public struct UnreadableSnapshot: Error, Sendable {
    /// "the snapshot was written by a newer keiji (format 4)", or "the snapshot does not decode: …".
    public var reason: String

    public init(reason: String) { self.reason = reason }
}

extension Journal {
    /// The newest checkpoint whose snapshot `read` can read, with what `read` made of it; nil when there is none and the
    /// state is the records' alone (replay from LSN 1).
    ///
    /// A checkpoint `read` refuses with ``UnreadableSnapshot`` is handled as recovery handles a damaged one, when that
    /// loses nothing: the newest older checkpoint `read` accepts (or none, when the segments still start at LSN 1) is
    /// loaded instead, provided every record after it is still in the journal; each refused one is renamed to
    /// `<file>.broken` and reported in ``recovery`` as `checkpointQuarantined`, and recorded for the next recovery
    /// report like any repair. It is set aside, not left in place: the journal holds every record it covers, so it
    /// holds nothing lost without it (a newer owner replays the same records), while left in place it would be
    /// refused again at every open, and the next checkpoint would keep it as the previous one and delete the
    /// readable one, leaving nothing to fall back to.
    ///
    /// - Throws: `.corruption`, one line naming the newest refused file and why, when no readable starting point has
    ///   every record after it in the journal (the segments before it were compacted). Nothing is renamed then.
    public func loadNewestReadableCheckpoint<State>(_ read: (Checkpoint) throws -> State) throws -> (checkpoint: Checkpoint, state: State)? {
        guard let latest = latestCheckpoint else { return nil }
        var refused: [(file: String, bytes: Int, reason: String)] = []
        var candidate: Checkpoint? = latest
        var loaded: (checkpoint: Checkpoint, state: State)?
        while let checkpoint = candidate {
            do {
                loaded = (checkpoint, try read(checkpoint))
                break
            } catch let unreadable as UnreadableSnapshot {
                refused.append((CheckpointFile.fileName(lsn: checkpoint.lsn), CheckpointFile.headerSize + checkpoint.snapshot.count, unreadable.reason))
                candidate = try newestVerifiedCheckpoint(below: checkpoint.lsn)
            }
        }
        guard let newest = refused.first else { return loaded }

        let fallbackLSN = loaded?.checkpoint.lsn ?? 0
        let firstSegmentBase = try contents.segments().first?.baseLSN ?? (lastLSN + 1)
        // A bridged checkpoint is the only copy of the LSNs the gap frame stands for: replaying past it would skip them.
        let bridged = recovery.repairs.contains { $0.kind == .checkpointBridged }
        guard firstSegmentBase <= fallbackLSN + 1, !bridged else {
            throw JournalError(.corruption, "cannot load the checkpoint \(newest.file) in \(directory): \(newest.reason); "
                + (refused.count > 1 ? "the older \(refused.dropFirst().map(\.file).joined(separator: ", ")) cannot be read either, and " : "")
                + "the records before LSN \(firstSegmentBase) are in no checkpoint this version reads, so nothing was changed. "
                + "Run the newer keiji that wrote it, if one did; to start without the state those checkpoints hold instead, move them aside and "
                + "start with `keiji system --start --recovery-mode pointInTime` (LSNs before \(firstSegmentBase) are lost).")
        }
        guard !checkpointInProgress.exchange(true, ordering: .acquiringAndReleasing) else {
            throw JournalError(.invalidArgument, "a checkpoint is being written; cannot set an unreadable one aside now")
        }
        defer { checkpointInProgress.store(false, ordering: .releasing) }

        let fallback = loaded.map { "recovery fell back to the previous checkpoint, \(CheckpointFile.fileName(lsn: $0.checkpoint.lsn)), and replays the records after LSN \($0.checkpoint.lsn)" }
            ?? "no older checkpoint is readable, so recovery replays the segments from their start"
        var repairs: [Repair] = []
        for (file, bytes, reason) in refused {
            try options.io.rename(directory + "/" + file, to: directory + "/" + file + ".broken")
            try options.io.syncDirectory(directory)
            repairs.append(Repair(kind: .checkpointQuarantined, file: file, bytes: bytes, quarantinedTo: file + ".broken",
                                  detail: "checksum valid, but \(reason); \(fallback)"))
        }
        shared.setCheckpoint(loaded?.checkpoint)
        recoveryInfo.withLock {
            $0.repairs += repairs
            $0.checkpointLSN = loaded?.checkpoint.lsn
        }
        // Best effort, as at open: the rename is done, and this open's caller has the repairs in `recovery`.
        if let recorded = try? UnreportedRepairsFile.read(io: options.io, directory: directory) {
            let process = ProcessInfo.processInfo.processName
            try? UnreportedRepairsFile.write(repairs.map {
                UnreportedRepair(repair: $0, openedAtNanoseconds: options.now(), mode: options.recoveryMode, process: process, openRefused: false)
            }, after: recorded, io: options.io, directory: directory)
        }
        return loaded
    }

    /// The newest checkpoint file below `lsn` that verifies (damaged ones were set aside by recovery already).
    private func newestVerifiedCheckpoint(below lsn: UInt64) throws -> Checkpoint? {
        let older = try options.io.listDirectory(directory).compactMap(CheckpointFile.lsn(fromFileName:)).filter { $0 < lsn }.sorted(by: >)
        for candidate in older {
            if let checkpoint = CheckpointFile.decode(try options.io.readAll(directory + "/" + CheckpointFile.fileName(lsn: candidate))),
                checkpoint.lsn == candidate
            {
                return checkpoint
            }
        }
        return nil
    }
}
