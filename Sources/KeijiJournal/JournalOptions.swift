/// How a journal writes, rolls, recovers and retains. The defaults are the safe ones.
public struct JournalOptions: Sendable {
    /// When an append is acknowledged.
    public enum Durability: Sendable, Equatable, CustomStringConvertible {
        /// After its batch is fdatasync'd (group commit: one sync per batch, one batch in flight). The default.
        case sync
        /// After `pwrite`; a sync follows within this many milliseconds. A crash of the machine (not the
        /// process) may lose that window.
        case interval(milliseconds: Int)
        /// After `pwrite`, never synced until roll or close. For tests and bulk imports only.
        case none

        public var description: String {
            switch self {
            case .sync: "sync"
            case .interval(let ms): "interval(\(ms)ms)"
            case .none: "none"
            }
        }
    }

    /// What recovery does when it finds damage inside data that was acknowledged as durable.
    public enum RecoveryMode: String, Sendable, Codable, CaseIterable {
        /// Refuse to open, naming the segment and offset. The default: nothing acknowledged is dropped silently.
        case strict
        /// Keep everything before the damage; quarantine the rest to `*.broken` and report the lost LSN range.
        case pointInTime
        /// Like `pointInTime`, then re-append every intact record found after the damage under its original
        /// LSN, with a gap frame for each lost range.
        case salvage
    }

    /// Which sealed segments compaction keeps even though a checkpoint covers them.
    public struct Retention: Sendable, Equatable {
        /// How many covered segments to keep, newest first, for history and inspection.
        public var segments: Int
        /// Covered segments younger than this are kept too.
        public var age: Duration?

        public init(segments: Int = 2, age: Duration? = nil) {
            self.segments = segments
            self.age = age
        }
    }

    public var durability: Durability = .sync
    public var recoveryMode: RecoveryMode = .strict
    /// A segment is sealed and a new one started once it reaches this size.
    public var segmentSize: Int = 64 << 20
    /// …or this age.
    public var segmentMaxAge: Duration? = .seconds(3600)
    /// Larger appends are refused with `.recordTooLarge`.
    public var maxRecordSize: Int = 4 << 20
    /// New segments are filled with zeros this far ahead of their frames, one chunk at a time (0: never).
    /// A sync of a write that grows the file must also write the file's new size (on ext4 without a journal,
    /// a second synchronous write; with one, a journal commit); a write into space already there need not.
    /// `keiji-bench journal` measured 1.35–1.48× the syncs a second on this project's VM. Each chunk's zeros
    /// go with the frame that needs them, so one sync in a chunk's worth of appends carries them.
    public var preallocationBytes: Int = 1 << 20
    /// Raw bytes per frame; a larger batch is written as several frames in one `pwrite`.
    public var maxBatchBytes: Int = 1 << 20
    /// Batches with a smaller raw payload are stored uncompressed.
    public var compressionThreshold: Int = 512
    /// After this long without appends, a note frame vouches for the last batch (so a later bit flip in it is
    /// recognised as corruption rather than a torn tail). `nil` disables it.
    public var idleNoteDelay: Duration? = .seconds(1)
    public var retention = Retention()
    /// The file-system seam; tests inject faults here.
    public var io: any JournalIO = PosixJournalIO()
    /// Wall clock in nanoseconds since the Unix epoch, for segment ages. Injectable for tests.
    public var now: @Sendable () -> UInt64 = { wallClockNanoseconds() }
    /// Told about every group commit, on the writer thread, after its appends are answered (the scheduler's
    /// metrics). It holds up the next batch while it runs, so it must only count: no I/O, no waiting.
    public var observer: (@Sendable (JournalCommitStatistics) -> Void)?

    public init() {}

    /// The largest payload a frame may declare: bounds every allocation recovery makes.
    var maxFramePayload: Int { max(maxBatchBytes, maxRecordSize) + 16 }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

func wallClockNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
