import Synchronization

/// What the writer thread publishes for other threads: the LSN watermarks, where the active segment's frames end,
/// and the latest checkpoint.
final class JournalSharedState: Sendable {
    struct Snapshot: Sendable {
        var lastLSN: UInt64 = 0
        var durableLSN: UInt64 = 0
        /// The active segment and the end of its frames, published with `lastLSN`: every record up to it lies before.
        var activeSegmentEnd: SegmentEnd?
        var checkpoint: Checkpoint?
    }

    private let state = Mutex(Snapshot())

    var snapshot: Snapshot { state.withLock { $0 } }

    func publish(_ writer: SegmentWriter) {
        let (last, durable, end) = (writer.lastLSN, writer.durableLSN, SegmentEnd(segment: writer.name, offset: writer.offset))
        state.withLock {
            $0.lastLSN = last
            $0.durableLSN = durable
            $0.activeSegmentEnd = end
        }
    }

    func setCheckpoint(_ checkpoint: Checkpoint?) { state.withLock { $0.checkpoint = checkpoint } }
}
