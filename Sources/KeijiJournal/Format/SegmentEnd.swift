/// Where a segment's frames end: the offset of the next frame its writer would write.
public struct SegmentEnd: Hashable, Sendable {
    public var segment: SegmentName
    public var offset: Int

    public init(segment: SegmentName, offset: Int) {
        self.segment = segment
        self.offset = offset
    }
}
