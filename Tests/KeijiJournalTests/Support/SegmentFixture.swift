import KeijiJournal

@testable import KeijiJournal

/// A small, cleanly closed single-segment journal built on the simulated file system, and where its frames
/// are: the subject of the truncation, bit-flip and damage tests.
struct SegmentFixture {
    struct Frame {
        var start: Int
        /// End of header and payload (a cut at or after this keeps the frame).
        var payloadEnd: Int
        /// End including padding.
        var end: Int
        var type: FrameType
        var lsns: ClosedRange<UInt64>?
    }

    let name: SegmentName
    let bytes: [UInt8]
    let frames: [Frame]
    let lastLSN: UInt64

    static let directory = "/j"
    var path: String { Self.directory + "/" + name.fileName }

    /// Appends `batches` (sizes of consecutive batches) in `sync` mode and closes cleanly.
    /// With `preallocation`, the segment is written with zeros ahead of its frames, that many bytes at a time.
    static func make(batches: [Int] = [1, 3, 1, 2, 1], preallocation: Int = 0) async throws -> SegmentFixture {
        let fs = SimulatedFileSystem()
        let journal = try Journal.open(
            directory: directory, options: testOptions(io: fs, segmentSize: 1 << 20, preallocation: preallocation))
        var next: UInt64 = 1
        for count in batches {
            let records = (0..<count).map { payload(for: next + UInt64($0)) }
            _ = try await journal.append(contentsOf: records)
            next += UInt64(count)
        }
        try await journal.close()
        let name = try journal.contents.segments()[0]
        let bytes = fs.contents(of: directory + "/" + name.fileName)!
        return SegmentFixture(name: name, bytes: bytes, frames: Self.frames(in: bytes, name: name), lastLSN: next - 1)
    }

    /// The frames of a segment's `bytes`, in order, up to the first that does not parse.
    static func frames(in bytes: [UInt8], name: SegmentName) -> [Frame] {
        var frames: [Frame] = []
        bytes.withUnsafeBytes { buffer in
            var offset = SegmentHeader.size
            while case .success(let header) = FrameHeader.parse(buffer, at: offset, segmentIDLow: UInt32(truncatingIfNeeded: name.segmentID), maxPayload: 1 << 20) {
                let lsns = header.type == .batch ? header.firstLSN...(header.firstLSN + UInt64(header.recordCount) - 1) : nil
                frames.append(Frame(start: offset, payloadEnd: offset + 40 + Int(header.payloadLength),
                                    end: offset + header.frameSize, type: header.type, lsns: lsns))
                offset += header.frameSize
            }
        }
        return frames
    }

    /// A simulated file system holding this segment with `bytes` in place of its content.
    func fileSystem(with bytes: [UInt8]) -> SimulatedFileSystem {
        let fs = SimulatedFileSystem()
        try! fs.createDirectory(Self.directory)
        fs.setContents(bytes, of: path)
        return fs
    }

    /// The checksum stored in `frame`'s header: what the next frame must name as its previous frame's CRC.
    func storedCRC(of frame: Frame) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: frame.start, as: UInt32.self)) }
    }

    /// The frame containing byte `offset`, if any.
    func frame(containing offset: Int) -> Frame? { frames.first { $0.start <= offset && offset < $0.end } }

    /// LSNs of the batch frames wholly before `offset`.
    func lsnsBefore(_ offset: Int) -> [UInt64] {
        frames.filter { $0.payloadEnd <= offset }.compactMap(\.lsns).flatMap { Array($0) }
    }
}

/// Opens a journal on `fs`, returns its recovery info and the LSNs read back (verified against what was
/// appended, without holes), then closes it. Throws what `Journal.open` throws.
func openAndRead(
    _ fs: SimulatedFileSystem, mode: JournalOptions.RecoveryMode = .strict, directory: String = SegmentFixture.directory
) async throws -> (RecoveryInfo, [UInt64]) {
    let journal = try Journal.open(directory: directory, options: testOptions(io: fs, segmentSize: 1 << 20, recovery: mode))
    do {
        let lsns = try verifiedLSNs(journal.contents)
        try await journal.close()
        return (journal.recovery, lsns)
    } catch {
        try? await journal.close()
        throw error
    }
}

func isCorruption(_ error: any Error) -> Bool { (error as? JournalError)?.code == .corruption }
