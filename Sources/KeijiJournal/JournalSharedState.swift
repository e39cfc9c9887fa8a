import Synchronization

/// What the writer thread publishes for other threads: the LSN watermarks and the latest checkpoint.
final class JournalSharedState: Sendable {
    struct Snapshot: Sendable {
        var lastLSN: UInt64 = 0
        var durableLSN: UInt64 = 0
        var checkpoint: Checkpoint?
    }

    private let state = Mutex(Snapshot())

    var snapshot: Snapshot { state.withLock { $0 } }

    func publish(_ writer: SegmentWriter) {
        let (last, durable) = (writer.lastLSN, writer.durableLSN)
        state.withLock {
            $0.lastLSN = last
            $0.durableLSN = durable
        }
    }

    func setCheckpoint(_ checkpoint: Checkpoint?) { state.withLock { $0.checkpoint = checkpoint } }
}
