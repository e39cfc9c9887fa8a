/// `seg-<base LSN, 20 digits>-<segment id, 16 hex digits>.jnl`: lexicographic order is LSN order, and the
/// segment id keeps names unique when a repaired or rewritten segment reuses a base LSN.
public struct SegmentName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var baseLSN: UInt64
    public var segmentID: UInt64

    public init(baseLSN: UInt64, segmentID: UInt64) {
        self.baseLSN = baseLSN
        self.segmentID = segmentID
    }

    public var fileName: String {
        "seg-" + Self.padded(String(baseLSN), 20) + "-" + Self.padded(String(segmentID, radix: 16), 16) + ".jnl"
    }

    public var description: String { fileName }

    /// Parses a file name; `nil` for anything that is not exactly a segment name.
    public init?(fileName: String) {
        guard fileName.count == 45, fileName.hasPrefix("seg-"), fileName.hasSuffix(".jnl") else { return nil }
        let parts = fileName.dropFirst(4).dropLast(4).split(separator: "-")
        guard parts.count == 2, parts[0].count == 20, parts[1].count == 16,
            parts[0].allSatisfy({ ("0"..."9").contains($0) }),
            parts[1].allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }),
            let base = UInt64(parts[0]), let id = UInt64(parts[1], radix: 16)
        else { return nil }
        self.init(baseLSN: base, segmentID: id)
    }

    public static func < (a: SegmentName, b: SegmentName) -> Bool {
        (a.baseLSN, a.segmentID) < (b.baseLSN, b.segmentID)
    }

    static func padded(_ s: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
