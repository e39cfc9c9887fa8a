/// What one group commit did: handed to ``JournalOptions/observer`` on the journal's writer thread once the
/// batch's appends are answered. Plain numbers, so the journal knows nothing of who reads them (the scheduler
/// turns them into its Prometheus metrics).
public struct JournalCommitStatistics: Sendable, Equatable {
    /// Records in the batch (0 for a sync the `interval` timer ran on its own).
    public var records = 0
    /// Their bytes as handed to `append`, before framing and compression.
    public var recordBytes = 0
    /// Bytes written to the segment for them: frames, compressed.
    public var bytesWritten = 0
    /// How long the batch's `fdatasync` took, in seconds; nil when it was not synced (`interval`, `none`).
    public var syncSeconds: Double?
    /// One entry per `append` call the batch answered: seconds from the call to its answer (queueing, the
    /// write and the sync).
    public var appendSeconds: [Double] = []

    public init() {}
}
