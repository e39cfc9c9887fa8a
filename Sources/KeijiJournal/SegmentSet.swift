/// How a family of segment files is named. The journal's segments use ``SegmentName``; the plain-text log
/// writer uses its own names with the same machinery.
public protocol SegmentNaming: Sendable {
    associatedtype Name: Comparable & Sendable
    func name(fromFileName fileName: String) -> Name?
    func fileName(for name: Name) -> String
}

/// The journal's segment names.
public struct JournalSegmentNaming: SegmentNaming {
    public init() {}
    public func name(fromFileName fileName: String) -> SegmentName? { SegmentName(fileName: fileName) }
    public func fileName(for name: SegmentName) -> String { name.fileName }
}

/// A directory of segment files: listing in order, quarantining, and retention-driven removal, each made
/// durable with a directory sync. Shared by the journal and the log writer so that rotation and compaction
/// are one mechanism.
public struct SegmentSet<Naming: SegmentNaming>: Sendable {
    public let io: any JournalIO
    public let directory: String
    public let naming: Naming

    public init(io: any JournalIO, directory: String, naming: Naming) {
        self.io = io
        self.directory = directory
        self.naming = naming
    }

    public func path(of name: Naming.Name) -> String { directory + "/" + naming.fileName(for: name) }

    /// The segments present, oldest first.
    public func list() throws -> [Naming.Name] {
        try io.listDirectory(directory).compactMap(naming.name(fromFileName:)).sorted()
    }

    /// Removes segments oldest first (so a crash part-way leaves a contiguous suffix), then syncs the directory.
    public func remove(_ names: [Naming.Name]) throws {
        guard !names.isEmpty else { return }
        for name in names.sorted() { try io.remove(path(of: name)) }
        try io.syncDirectory(directory)
    }

    /// Moves a whole segment aside to `<file>.broken` and syncs the directory. Returns the new file name.
    @discardableResult
    public func quarantine(_ name: Naming.Name) throws -> String {
        let target = naming.fileName(for: name) + ".broken"
        try io.rename(path(of: name), to: directory + "/" + target)
        try io.syncDirectory(directory)
        return target
    }

    /// Which of `covered` (segments a checkpoint makes redundant, oldest first, with their creation times)
    /// retention lets compaction delete: all but the newest `retention.segments`, and none younger than
    /// `retention.age`.
    public static func removable(
        _ covered: [(name: Naming.Name, createdNanoseconds: UInt64)],
        retention: JournalOptions.Retention,
        now: UInt64
    ) -> [Naming.Name] {
        let candidates = covered.dropLast(max(0, retention.segments))
        return candidates.filter { segment in
            guard let age = retention.age else { return true }
            return now >= segment.createdNanoseconds && now - segment.createdNanoseconds >= age.nanoseconds
        }.map(\.name)
    }
}
