/// What opening the journal found and did. Returned by ``Journal/open(directory:options:)``; never silent:
/// every byte moved or dropped is listed in ``repairs``.
public struct RecoveryInfo: Sendable, Codable, Equatable {
    public var mode: JournalOptions.RecoveryMode
    public var segmentsScanned = 0
    public var framesScanned = 0
    public var recordsScanned = 0
    /// The newest valid checkpoint, if any.
    public var checkpointLSN: UInt64?
    /// The last durable LSN after recovery; 0 for an empty journal.
    public var lastLSN: UInt64 = 0
    /// The previous writer closed the journal cleanly.
    public var cleanShutdown = false
    public var durationSeconds = 0.0
    public var repairs: [Repair] = []

    /// No repair was needed.
    public var isClean: Bool { repairs.isEmpty }
    /// Bytes of data moved to `*.broken` files or dropped (zeros written ahead of frames are not counted).
    public var bytesRepaired: Int { repairs.reduce(0) { $0 + $1.bytes } }

    public init(mode: JournalOptions.RecoveryMode) { self.mode = mode }
}

/// One thing recovery changed on disk, and why.
public struct Repair: Sendable, Codable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// An unacknowledged, partly written tail was cut off (quarantined first).
        case tornTailTruncated
        /// Bytes after a segment's seal frame were cut off; no record was in them.
        case dataAfterSealTruncated
        /// `pointInTime`/`salvage`: acknowledged data was damaged; everything from the damage on was cut off.
        case corruptionTruncated
        /// A whole segment after the cut was moved aside.
        case segmentQuarantined
        /// `salvage`: intact records found after the damage were re-appended under their LSNs.
        case recordsSalvaged
        /// A leftover `.tmp` file from an interrupted create or rename was removed.
        case temporaryFileRemoved
        /// A damaged checkpoint file was moved aside; an older one (or none) is used.
        case checkpointQuarantined
        /// Segments below the first surviving one are missing and no checkpoint covers them.
        case missingSegments
        /// `pointInTime`/`salvage`: the cut fell at or before the checkpoint, and the segments before the cut were
        /// compacted, so the checkpoint is the only copy of that state: it is kept, and a gap frame carries the
        /// journal from the cut to the checkpoint's LSN.
        case checkpointBridged
    }

    /// Whether this repair took acknowledged records (or the only copy of their state) out of the journal, so that
    /// anything derived from the journal before it (the query view) may hold what the journal no longer has. A torn
    /// tail, bytes after a seal and leftover `.tmp` files never held an acknowledged record.
    public var losesAcknowledgedRecords: Bool {
        switch kind {
        case .tornTailTruncated, .dataAfterSealTruncated, .temporaryFileRemoved: false
        case .corruptionTruncated, .segmentQuarantined, .recordsSalvaged, .checkpointQuarantined, .missingSegments, .checkpointBridged: true
        }
    }

    public var kind: Kind
    public var file: String
    public var offset: Int?
    /// Bytes of frames and data removed from the live journal (they are in ``quarantinedTo`` when set). A preallocated
    /// segment's zeros after its last frame are not counted: the quarantine copy keeps them, but they held nothing.
    public var bytes: Int
    public var quarantinedTo: String?
    /// LSNs that are no longer in the journal because of this repair. For ``Kind/recordsSalvaged``, the span of the
    /// records re-appended (``lostRanges`` says which LSNs are lost).
    public var lostLSNs: LSNRange?
    /// ``Kind/recordsSalvaged``: exactly the LSNs the cut lost and no intact frame gave back, ascending. Each was an
    /// acknowledged record (a lost `task.disabled` re-enables a task), so the operator is told them, not left to
    /// subtract the salvaged span from the cut one. Nil in other repairs and in repairs recorded before it existed.
    public var lostRanges: [LSNRange]?
    public var detail: String

    public init(kind: Kind, file: String, offset: Int? = nil, bytes: Int, quarantinedTo: String? = nil,
                lostLSNs: LSNRange? = nil, lostRanges: [LSNRange]? = nil, detail: String) {
        (self.kind, self.file, self.offset, self.bytes, self.quarantinedTo) = (kind, file, offset, bytes, quarantinedTo)
        (self.lostLSNs, self.lostRanges, self.detail) = (lostLSNs, lostRanges, detail)
    }

    /// The acknowledged records this repair took out of the journal, as LSN ranges: empty for a repair that loses
    /// none (a torn tail was never acknowledged) and where the LSNs are not known.
    public var lostAcknowledgedLSNs: [LSNRange] {
        guard losesAcknowledgedRecords else { return [] }
        if let lostRanges { return lostRanges }
        return kind == .recordsSalvaged ? [] : lostLSNs.map { [$0] } ?? []
    }

    public var description: String {
        var text = "\(kind.rawValue): \(file)"
        if let offset { text += " at offset \(offset)" }
        if bytes > 0 { text += ", \(bytes) bytes" }
        if let quarantinedTo { text += " → \(quarantinedTo)" }
        if let lostRanges {
            text += lostRanges.isEmpty ? ", no LSN lost" : ", lost LSNs " + LSNRange.list(lostRanges)
        } else if let lostLSNs {
            text += ", LSNs \(lostLSNs.lowerBound)…\(lostLSNs.upperBound)"
        }
        return text + " (\(detail))"
    }
}

/// An inclusive LSN range that encodes as `{"lowerBound":…,"upperBound":…}`.
public struct LSNRange: Sendable, Codable, Equatable, Hashable {
    public var lowerBound: UInt64
    public var upperBound: UInt64
    public init(_ range: ClosedRange<UInt64>) {
        lowerBound = range.lowerBound
        upperBound = range.upperBound
    }
    public var range: ClosedRange<UInt64> { lowerBound...upperBound }

    /// `20…20, 31…33`: how reports name a set of LSNs.
    public static func list(_ ranges: [LSNRange]) -> String {
        ranges.map { "\($0.lowerBound)…\($0.upperBound)" }.joined(separator: ", ")
    }

    /// `ranges` sorted, with overlapping and adjacent ones joined.
    public static func merged(_ ranges: [LSNRange]) -> [LSNRange] {
        var out: [LSNRange] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, range.lowerBound <= last.upperBound || range.lowerBound - last.upperBound == 1 {
                out[out.count - 1].upperBound = max(last.upperBound, range.upperBound)
            } else {
                out.append(range)
            }
        }
        return out
    }
}
