import Synchronization

/// What the writer thread publishes for other threads: the LSN watermarks, the active segment, the latest
/// checkpoint and any failure.
final class JournalSharedState: Sendable {
    struct Snapshot: Sendable {
        var activeSegment = SegmentName(baseLSN: 1, segmentID: 0)
        var lastLSN: UInt64 = 0
        var durableLSN: UInt64 = 0
        var checkpoint: Checkpoint?
        var failure: JournalError?
    }

    private let state = Mutex(Snapshot())

    var snapshot: Snapshot { state.withLock { $0 } }

    func publish(_ writer: SegmentWriter) {
        let (name, last, durable) = (writer.name, writer.lastLSN, writer.durableLSN)
        state.withLock {
            $0.activeSegment = name
            $0.lastLSN = last
            $0.durableLSN = durable
        }
    }

    func setCheckpoint(_ checkpoint: Checkpoint?) { state.withLock { $0.checkpoint = checkpoint } }

    func markFailed(_ error: JournalError) {
        state.withLock { if $0.failure == nil { $0.failure = error } }
    }
}
