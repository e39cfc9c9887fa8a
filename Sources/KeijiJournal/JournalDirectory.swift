/// A read-only view of a journal directory: read records, compute statistics, verify every checksum, export
/// a segment. It never writes or repairs, so it is safe while a scheduler holds the journal open (it then
/// reads what is on disk; a frame being written at that moment looks like a torn tail and ends the read).
public struct JournalDirectory: Sendable {
    public let path: String
    public let io: any JournalIO
    /// Records past this LSN are not read (a live journal passes its acknowledged LSN).
    public let upperBound: UInt64
    /// A live journal's active segment and where its frames up to `upperBound` end. Records are read only up to
    /// there: past it the file holds the writer's preallocated zeros (up to a MiB, which recovery has checked
    /// already) or frames not yet acknowledged.
    public let activeSegmentEnd: SegmentEnd?

    public init(path: String, io: any JournalIO = PosixJournalIO(), upperBound: UInt64 = .max, activeSegmentEnd: SegmentEnd? = nil) {
        self.path = path
        self.io = io
        self.upperBound = upperBound
        self.activeSegmentEnd = activeSegmentEnd
    }

    private var set: SegmentSet<JournalSegmentNaming> { SegmentSet(io: io, directory: path, naming: JournalSegmentNaming()) }

    /// Segment names, oldest first.
    public func segments() throws -> [SegmentName] { try set.list() }

    /// The newest checkpoint that verifies, if any; with `bound`, the newest below that LSN (the fallback when the owner cannot
    /// read a newer one's snapshot: an open has set damaged ones aside already, and verify reports them apart).
    public func latestCheckpoint(below bound: UInt64 = .max) throws -> Checkpoint? {
        let files = try io.listDirectory(path).compactMap { CheckpointFile.lsn(fromFileName: $0) }.filter { $0 < bound }.sorted(by: >)
        for lsn in files {
            if let checkpoint = CheckpointFile.decode(try io.readAll(path + "/" + CheckpointFile.fileName(lsn: lsn))),
                checkpoint.lsn == lsn
            {
                return checkpoint
            }
        }
        return nil
    }

    /// Calls `body` with every record from `start` through `end` (inclusive) in LSN order, without copying.
    /// Stops quietly at a torn tail in the last segment; throws `.corruption` for damage anywhere else.
    ///
    /// - Returns: the last LSN delivered (0 if none).
    @discardableResult
    public func forEachRecord(
        from start: UInt64 = 1, through end: UInt64 = .max,
        _ body: (_ lsn: UInt64, _ record: UnsafeRawBufferPointer) throws -> Void
    ) throws -> UInt64 {
        let last = min(end, upperBound)
        let names = try set.list()
        guard start <= last, !names.isEmpty else { return 0 }
        // The last segment whose base is at or before `start`, and everything after it.
        let first = names.lastIndex { $0.baseLSN <= start } ?? 0
        var delivered: UInt64 = 0
        var thrown: (any Error)?
        for (index, name) in names.enumerated().dropFirst(first) {
            if name.baseLSN > last { break }
            let bytes = try readRecords(of: name)
            let scan = SegmentScanner().scan(bytes, name: name) { lsn, record in
                guard thrown == nil, lsn >= start, lsn <= last else { return }
                do {
                    try body(lsn, record)
                    delivered = lsn
                } catch {
                    thrown = error
                }
            }
            if let thrown { throw thrown }
            if let problem = scan.headerProblem ?? scan.damage.map({ "\($0.problem) at offset \($0.offset)" }),
                index < names.count - 1 || scan.headerProblem != nil || scan.damage?.isVouchedFor == true
            {
                throw JournalError(.corruption, "journal corruption in \(name.fileName): \(problem)")
            }
        }
        return delivered
    }

    /// A segment's bytes, the active segment's only up to the end of its acknowledged frames.
    private func readRecords(of name: SegmentName) throws -> [UInt8] {
        guard let activeSegmentEnd, activeSegmentEnd.segment == name else { return try io.readAll(set.path(of: name)) }
        let file = try io.open(set.path(of: name), mode: .readOnly)
        defer { io.close(file) }
        return try io.read(file, at: 0, count: min(activeSegmentEnd.offset, try io.size(of: file)))
    }

    /// Copies out every record from `start` through `end`.
    public func records(from start: UInt64 = 1, through end: UInt64 = .max) throws -> [JournalRecord] {
        var records: [JournalRecord] = []
        try forEachRecord(from: start, through: end) { lsn, bytes in records.append(JournalRecord(lsn: lsn, bytes: Array(bytes))) }
        return records
    }

    /// Sizes, LSN ranges and compression of every segment.
    public func stats() throws -> JournalStats {
        var stats = JournalStats()
        for name in try set.list() {
            let bytes = try io.readAll(set.path(of: name))
            let scan = SegmentScanner().scan(bytes, name: name)
            stats.segments.append(SegmentStats(
                name: name, bytes: bytes.count, preallocatedBytes: scan.preallocatedBytes, frames: scan.frameCount, records: scan.recordCount,
                firstLSN: name.baseLSN, lastLSN: scan.isIntact || scan.damage != nil ? scan.lastLSN : name.baseLSN - 1,
                sealed: scan.sealed, rawPayloadBytes: scan.rawPayloadBytes, storedPayloadBytes: scan.storedPayloadBytes,
                damaged: !scan.isIntact))
        }
        stats.checkpointLSN = try latestCheckpoint()?.lsn
        return stats
    }

    /// Checks every header, frame checksum, LZ4 block and the chain between segments, without repairing.
    public func verify() throws -> VerifyReport {
        var report = VerifyReport()
        let names = try set.list()
        var previous: SegmentScan?
        let checkpoint = try latestCheckpoint()
        for (index, name) in names.enumerated() {
            let scan = SegmentScanner().scan(try io.readAll(set.path(of: name)), name: name)
            report.segmentsChecked += 1
            report.framesChecked += scan.frameCount
            report.recordsChecked += scan.recordCount
            let isLast = index == names.count - 1
            if let problem = scan.headerProblem {
                report.problems.append(.init(file: name.fileName, offset: 0, severity: .corruption, detail: problem))
            } else if let previous, !scan.follows(previous) {
                report.problems.append(.init(file: name.fileName, offset: 0, severity: .corruption,
                    detail: "does not follow \(previous.name.fileName) (missing, stale or reordered segment)"))
            } else if previous == nil, name.baseLSN > (checkpoint.map { $0.lsn + 1 } ?? 1) {
                report.problems.append(.init(file: name.fileName, offset: 0, severity: .corruption,
                    detail: "LSNs before \(name.baseLSN) are missing and no checkpoint covers them"))
            }
            if let damage = scan.damage {
                let torn = isLast && !damage.isVouchedFor || damage.problem == .dataAfterSeal
                report.problems.append(.init(
                    file: name.fileName, offset: damage.offset, severity: torn ? .tornTail : .corruption,
                    detail: "\(damage.problem) (LSN \(damage.expectedLSN))"))
            }
            previous = scan
        }
        report.problems += try damagedCheckpoints(firstSegmentBase: names.first?.baseLSN, validCheckpointLSN: checkpoint?.lsn)
        // A checkpoint vouches for every LSN up to its own as durable: a journal that ends before it (a tail cut
        // below it, a lost newest segment) lost acknowledged records, which an open refuses in strict mode.
        if let checkpoint, let last = previous, checkpoint.lsn > last.lastLSN {
            report.problems.append(.init(file: CheckpointFile.fileName(lsn: checkpoint.lsn), offset: 0, severity: .corruption,
                detail: "the checkpoint is at LSN \(checkpoint.lsn), past the journal's last intact LSN \(last.lastLSN): LSNs \(last.lastLSN + 1)…\(checkpoint.lsn) were acknowledged and are missing"))
        }
        return report
    }

    /// Each checkpoint file that does not decode (or whose LSN is not its name's), which ``latestCheckpoint()`` and
    /// recovery pass over. It is corruption when it is the only cover of LSNs whose segments are gone (compacted
    /// behind it, no valid checkpoint covering them): a strict open refuses that journal. Otherwise the next open
    /// sets it aside and replays from an older checkpoint or the segments, losing nothing: a warning.
    private func damagedCheckpoints(firstSegmentBase: UInt64?, validCheckpointLSN: UInt64?) throws -> [VerifyReport.Problem] {
        let files = try io.listDirectory(path).compactMap { name in CheckpointFile.lsn(fromFileName: name).map { (name, $0) } }.sorted { $0.1 < $1.1 }
        var problems: [VerifyReport.Problem] = []
        for (file, lsn) in files {
            let bytes = try io.readAll(path + "/" + file)
            guard let decoded = CheckpointFile.decode(bytes) else {
                problems.append(problem(file, lsn, "the checkpoint does not decode (checksum or header invalid)",
                                        firstSegmentBase: firstSegmentBase, validCheckpointLSN: validCheckpointLSN))
                continue
            }
            if decoded.lsn != lsn {
                problems.append(problem(file, lsn, "the checkpoint holds LSN \(decoded.lsn), not its name's",
                                        firstSegmentBase: firstSegmentBase, validCheckpointLSN: validCheckpointLSN))
            }
        }
        return problems
    }

    private func problem(_ file: String, _ lsn: UInt64, _ why: String, firstSegmentBase: UInt64?, validCheckpointLSN: UInt64?) -> VerifyReport.Problem {
        // Segments start after LSN 1 (or there are none): LSNs below them exist only in a checkpoint.
        let gone: ClosedRange<UInt64>? = switch firstSegmentBase {
        case .some(let base) where base > 1: 1...(base - 1)
        case .some: nil
        case .none: lsn > 0 ? 1...lsn : nil
        }
        if let gone, (validCheckpointLSN ?? 0) < gone.upperBound {
            return .init(file: file, offset: 0, severity: .corruption,
                         detail: "\(why); the segments of LSNs \(gone.lowerBound)…\(gone.upperBound) are gone and no valid checkpoint covers them, so this one was their only copy")
        }
        if let validCheckpointLSN, validCheckpointLSN > lsn {
            // A start loads the newest valid checkpoint and never reads this older one; the next checkpoint deletes it.
            return .init(file: file, offset: 0, severity: .warning,
                         detail: "\(why); it is older than the valid checkpoint at LSN \(validCheckpointLSN), which starts use, so nothing is lost, but until the next checkpoint deletes it recovery has no checkpoint to fall back to if that one is damaged")
        }
        return .init(file: file, offset: 0, severity: .warning,
                     detail: "\(why); the next start sets it aside (.broken) and replays from \(validCheckpointLSN.map { "the checkpoint at LSN \($0)" } ?? "the segments"), losing nothing")
    }

    /// Writes a segment's records, one per line, as an LZ4 frame file that `lz4 -d` reads. Each record is
    /// written as `line` turns it (verbatim by default; keiji passes its JSON form, since the journal holds
    /// some records in binary). Damage ends the export: a torn tail is reported in the result, corruption of
    /// acknowledged data throws.
    @discardableResult
    public func exportSegment(
        _ name: SegmentName, to destination: String, line: (UnsafeRawBufferPointer) -> [UInt8] = { Array($0) }
    ) throws -> ExportSummary {
        let scan = SegmentScanner()
        var text: [UInt8] = []
        var records = 0
        let result = scan.scan(try io.readAll(set.path(of: name)), name: name) { _, record in
            text.append(contentsOf: line(record))
            text.append(UInt8(ascii: "\n"))
            records += 1
        }
        if let problem = result.headerProblem { throw JournalError(.corruption, "\(name.fileName): \(problem)") }
        let isLast = try set.list().last == name
        if let damage = result.damage, !isLast || damage.isVouchedFor {
            throw JournalError(.corruption, "\(name.fileName) is damaged at offset \(damage.offset): \(damage.problem)")
        }
        // A tail below the latest checkpoint was acknowledged (the checkpoint vouches for it), as `verify` says.
        if let damage = result.damage, let checkpoint = try latestCheckpoint(), checkpoint.lsn > result.lastLSN {
            throw JournalError(.corruption, "\(name.fileName) is damaged at offset \(damage.offset): \(damage.problem); the checkpoint at LSN "
                               + "\(checkpoint.lsn) vouches for LSNs \(result.lastLSN + 1)…\(checkpoint.lsn), so they were acknowledged and are missing")
        }
        let compressed = try LZ4FrameFile.compress(text)
        let file = try io.open(destination, mode: .createNew)
        defer { io.close(file) }
        try io.write(file, compressed, at: 0)
        try io.sync(file)
        return ExportSummary(records: records, bytes: compressed.count, endedAtTornTail: result.damage != nil)
    }
}

/// What ``JournalDirectory/exportSegment(_:to:)`` wrote.
public struct ExportSummary: Sendable, Equatable {
    public var records: Int
    /// Size of the `.lz4` file.
    public var bytes: Int
    /// The segment ended in an unacknowledged torn tail, which was left out.
    public var endedAtTornTail: Bool
}

/// A record and its log sequence number.
public struct JournalRecord: Sendable, Equatable, Hashable {
    public var lsn: UInt64
    public var bytes: [UInt8]
    public init(lsn: UInt64, bytes: [UInt8]) {
        self.lsn = lsn
        self.bytes = bytes
    }
}

/// Per-segment and total figures for `keiji journal stats`.
public struct JournalStats: Sendable, Codable, Equatable {
    public var segments: [SegmentStats] = []
    public var checkpointLSN: UInt64?

    public var totalBytes: Int { segments.reduce(0) { $0 + $1.bytes } }
    public var preallocatedBytes: Int { segments.reduce(0) { $0 + $1.preallocatedBytes } }
    public var records: Int { segments.reduce(0) { $0 + $1.records } }
    public var firstLSN: UInt64? { segments.first { $0.records > 0 }?.firstLSN }
    public var lastLSN: UInt64? { segments.last { $0.records > 0 }?.lastLSN }
    /// Raw record bytes over stored payload bytes, across all segments.
    public var compressionRatio: Double {
        let stored = segments.reduce(0) { $0 + $1.storedPayloadBytes }
        return stored == 0 ? 1 : Double(segments.reduce(0) { $0 + $1.rawPayloadBytes }) / Double(stored)
    }
}

public struct SegmentStats: Sendable, Codable, Equatable {
    public var name: SegmentName
    /// The file's size, zeros written ahead included.
    public var bytes: Int
    /// Zeros after the last frame of a preallocated segment: space on disk, not yet used.
    public var preallocatedBytes: Int
    public var frames: Int
    public var records: Int
    public var firstLSN: UInt64
    public var lastLSN: UInt64
    public var sealed: Bool
    public var rawPayloadBytes: Int
    public var storedPayloadBytes: Int
    public var damaged: Bool
}

extension SegmentName: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let name = SegmentName(fileName: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a segment name: \(text)"))
        }
        self = name
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(fileName)
    }
}

/// What `verify` found: empty ``problems`` means every byte checked out.
public struct VerifyReport: Sendable, Codable, Equatable {
    public enum Severity: String, Sendable, Codable {
        /// An unacknowledged, partly written tail: recovery cuts it without loss.
        case tornTail
        /// Damage to acknowledged data.
        case corruption
        /// Damage recovery sets aside without losing anything (a checkpoint whose LSNs are still covered).
        case warning
    }
    public struct Problem: Sendable, Codable, Equatable, CustomStringConvertible {
        public var file: String
        public var offset: Int
        public var severity: Severity
        public var detail: String
        public var description: String { "\(severity.rawValue): \(file) at offset \(offset): \(detail)" }

        /// Public for the findings only the journal's owner can make (a snapshot it cannot read).
        public init(file: String, offset: Int, severity: Severity, detail: String) {
            self.file = file
            self.offset = offset
            self.severity = severity
            self.detail = detail
        }
    }
    public var segmentsChecked = 0
    public var framesChecked = 0
    public var recordsChecked = 0
    public var problems: [Problem] = []
    public var hasCorruption: Bool { problems.contains { $0.severity == .corruption } }
}
