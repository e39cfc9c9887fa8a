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
        // A bridged checkpoint is the only copy of the LSNs the gap frame stands for: replaying past it would skip them.
        let bridged = recovery.repairs.contains { $0.kind == .checkpointBridged }
        let plan = try contents.checkpointLoadPlan(from: latestCheckpoint, bridged: bridged, read)
        guard !plan.refused.isEmpty else { return plan.loaded }
        if let refusal = plan.refusal { throw JournalError(.corruption, refusal) }
        guard !checkpointInProgress.exchange(true, ordering: .acquiringAndReleasing) else {
            throw JournalError(.invalidArgument, "a checkpoint is being written; cannot set an unreadable one aside now")
        }
        defer { checkpointInProgress.store(false, ordering: .releasing) }

        var repairs: [Repair] = []
        for refused in plan.refused {
            try options.io.rename(directory + "/" + refused.file, to: directory + "/" + refused.file + ".broken")
            try options.io.syncDirectory(directory)
            repairs.append(Repair(kind: .checkpointQuarantined, file: refused.file, bytes: refused.bytes, quarantinedTo: refused.file + ".broken",
                                  detail: "checksum valid, but \(refused.reason); \(plan.fallback)"))
        }
        shared.setCheckpoint(plan.loaded?.checkpoint)
        recoveryInfo.withLock {
            $0.repairs += repairs
            $0.checkpointLSN = plan.loaded?.checkpoint.lsn
        }
        // Best effort, as at open: the rename is done, and this open's caller has the repairs in `recovery`.
        if let recorded = try? UnreportedRepairsFile.read(io: options.io, directory: directory) {
            let process = ProcessInfo.processInfo.processName
            try? UnreportedRepairsFile.write(repairs.map {
                UnreportedRepair(repair: $0, openedAtNanoseconds: options.now(), mode: options.recoveryMode, process: process, openRefused: false)
            }, after: recorded, io: options.io, directory: directory)
        }
        return plan.loaded
    }
}

/// A checkpoint that verifies but whose snapshot the owner's `read` refused (``UnreadableSnapshot``).
public struct RefusedCheckpoint: Sendable, Equatable {
    /// `ckpt-….ckpt`.
    public var file: String
    public var bytes: Int
    /// ``UnreadableSnapshot/reason``.
    public var reason: String
}

/// What loading the state would do about checkpoints whose snapshot the owner cannot read, worked out without changing
/// anything: ``Journal/loadNewestReadableCheckpoint(_:)`` acts on it, and `keiji journal verify` reports it, so the two
/// cannot disagree about what the next start will do.
public struct CheckpointLoadPlan<State> {
    /// The checkpoints `read` refused, newest first; empty when the newest checkpoint (or none) loads as it is.
    public var refused: [RefusedCheckpoint] = []
    /// The newest checkpoint `read` accepted, with what it made of it; nil when the state is the records' alone.
    public var loaded: (checkpoint: Checkpoint, state: State)?
    /// Set when falling back would lose records: the one-line reason the load fails, renaming nothing.
    public var refusal: String?

    /// The file of ``loaded``'s checkpoint.
    public var loadedFile: String? { loaded.map { CheckpointFile.fileName(lsn: $0.checkpoint.lsn) } }

    /// What the load did instead, for its repair: "recovery fell back to the previous checkpoint, ckpt-….ckpt, and
    /// replays the records after LSN N", or that it replays the segments from their start.
    public var fallback: String {
        loaded.map { CheckpointFile.fellBack(to: $0.checkpoint.lsn) }
            ?? "no older checkpoint is readable, so recovery replays the segments from their start"
    }
}

extension JournalDirectory {
    /// Reads `latest` and, while `read` refuses with ``UnreadableSnapshot``, each older checkpoint that verifies, and
    /// says what the load would do: fall back to the newest one `read` accepts (or none, when the segments still start
    /// at LSN 1) provided every record after it is still in the segments and `bridged` (a recovery repair that made
    /// a checkpoint the only copy of some LSNs) is false, or refuse. Reads only.
    public func checkpointLoadPlan<State>(
        from latest: Checkpoint?, bridged: Bool = false, _ read: (Checkpoint) throws -> State
    ) throws -> CheckpointLoadPlan<State> {
        var plan = CheckpointLoadPlan<State>()
        guard let latest else { return plan }
        var candidate: Checkpoint? = latest
        while let checkpoint = candidate {
            do {
                plan.loaded = (checkpoint, try read(checkpoint))
                break
            } catch let unreadable as UnreadableSnapshot {
                plan.refused.append(RefusedCheckpoint(file: CheckpointFile.fileName(lsn: checkpoint.lsn),
                                                      bytes: CheckpointFile.headerSize + checkpoint.snapshot.count, reason: unreadable.reason))
                candidate = try latestCheckpoint(below: checkpoint.lsn)
            }
        }
        guard let newest = plan.refused.first else { return plan }
        let fallbackLSN = plan.loaded?.checkpoint.lsn ?? 0
        let firstSegmentBase = try segments().first?.baseLSN ?? (latest.lsn + 1)
        if firstSegmentBase > fallbackLSN + 1 || bridged {
            plan.refusal = "cannot load the checkpoint \(newest.file) in \(path): \(newest.reason); "
                + (plan.refused.count > 1 ? "the older \(plan.refused.dropFirst().map(\.file).joined(separator: ", ")) cannot be read either, and " : "")
                + "the records before LSN \(firstSegmentBase) are in no checkpoint this version reads, so nothing was changed. "
                + "Run the newer keiji that wrote it, if one did; to start without the state those checkpoints hold instead, move them aside and "
                + "start with `keiji system --start --recovery-mode pointInTime` (LSNs before \(firstSegmentBase) are lost)."
        }
        return plan
    }
}
