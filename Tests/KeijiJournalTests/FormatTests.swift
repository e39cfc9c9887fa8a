import Foundation
import Testing

@testable import KeijiJournal

struct FormatTests {
    @Test func crc32cMatchesPublishedVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0...31)) == 0x46DD_794E)
        // Extending in pieces equals one pass, across every split point and alignment.
        let data = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        for split in 0...data.count {
            let head = CRC32C.checksum(Array(data[..<split]))
            #expect(CRC32C.checksum(Array(data[split...]), extending: head) == CRC32C.checksum(data))
        }
    }

    @Test func maskIsReversibleAndChangesTheValue() {
        for crc: UInt32 in [0, 1, 0xE306_9283, .max] {
            #expect(CRC32C.unmask(CRC32C.mask(crc)) == crc)
            #expect(CRC32C.mask(crc) != crc)
        }
    }

    @Test func segmentNamesSortByLSNAndRoundTrip() {
        let a = SegmentName(baseLSN: 9, segmentID: 0xFF)
        let b = SegmentName(baseLSN: 10, segmentID: 1)
        #expect(a.fileName == "seg-00000000000000000009-00000000000000ff.jnl")
        #expect(SegmentName(fileName: a.fileName) == a)
        #expect(a.fileName < b.fileName && a < b)
        for bad in ["seg-1-2.jnl", "seg-00000000000000000009-00000000000000FF.jnl", "seg-+0000000000000000009-00000000000000ff.jnl", "seg-0000000000000000000a-00000000000000ff.jnl", a.fileName + ".broken", a.fileName + ".tmp"] {
            #expect(SegmentName(fileName: bad) == nil)
        }
    }

    @Test func segmentHeaderRoundTripsAndRejectsDamage() throws {
        let header = SegmentHeader(segmentID: 7, baseLSN: 42, createdNanoseconds: 1, previousSegmentID: 6,
                                   previousLastLSN: 41, previousFrameCRC: 0xDEAD_BEEF, maxFramePayload: 1 << 20)
        let bytes = header.encoded()
        #expect(bytes.count == 4096)
        #expect(try SegmentHeader.decode(bytes).get() == header)
        for offset in 0..<SegmentHeader.size {
            var damaged = bytes
            damaged[offset] ^= 0x10
            #expect((try? SegmentHeader.decode(damaged).get()) == nil, "a change at byte \(offset) of the header page must be detected")
        }
        #expect((try? SegmentHeader.decode(Array(bytes.prefix(100))).get()) == nil)
    }

    @Test func lz4BlockRoundTripsAndRejectsMalformedBlocks() throws {
        let raw = Array(String(repeating: "{\"task\":\"backup\",\"event\":\"run.finished\"}", count: 40).utf8)
        let compressed = try #require(raw.withUnsafeBytes { LZ4Block.compress($0) })
        #expect(compressed.count < raw.count / 4)
        #expect(compressed.withUnsafeBytes { LZ4Block.decompress($0, rawLength: raw.count) } == raw)
        // Wrong declared length, truncated input and garbage all fail without overrunning.
        #expect(compressed.withUnsafeBytes { LZ4Block.decompress($0, rawLength: raw.count - 1) } == nil)
        #expect(compressed.withUnsafeBytes { LZ4Block.decompress($0, rawLength: raw.count + 1) } == nil)
        let truncated = Array(compressed.dropLast(3))
        #expect(truncated.withUnsafeBytes { LZ4Block.decompress($0, rawLength: raw.count) } == nil)
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01]
        #expect(garbage.withUnsafeBytes { LZ4Block.decompress($0, rawLength: 1 << 20) } == nil)
        // Incompressible input is left raw.
        var rng = SeededGenerator(seed: 1)
        let noise = (0..<600).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(noise.withUnsafeBytes { LZ4Block.compress($0) } == nil)
    }

    @Test func lz4FrameFileIsReadableByTheLz4Tool() throws {
        let text = Array(String(repeating: "line of a task log\n", count: 500).utf8)
        let compressed = try LZ4FrameFile.compress(text)
        #expect(try LZ4FrameFile.decompress(compressed) == text)
        #expect(throws: JournalError.self, "a truncated frame file is an error, not a short result") {
            try LZ4FrameFile.decompress(Array(compressed.dropLast(6)))
        }
        let directory = TemporaryDirectory("lz4")
        defer { directory.remove() }
        let path = directory.path + "/log.lz4"
        try Data(compressed).write(to: URL(fileURLWithPath: path))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/lz4")
        process.arguments = ["-d", "-c", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(Array(output) == text)
    }

    @Test func framesRoundTripThroughTheScanner() {
        let encoder = FrameEncoder(segmentIDLow: 3, compressionThreshold: 64)
        let records: [[UInt8]] = [[], [1], payload(for: 3, size: 200), payload(for: 4, size: 5000)]
        let frame = encoder.batch(records[...], firstLSN: 10, syncedThroughLSN: 9, previousFrameCRC: 77)
        #expect(frame.bytes.count % 8 == 0)
        frame.bytes.withUnsafeBytes { buffer in
            guard case .success(let header) = FrameHeader.parse(buffer, at: 0, segmentIDLow: 3, maxPayload: 1 << 20) else {
                Issue.record("frame does not parse")
                return
            }
            #expect(header.codec == .lz4Block)
            #expect(header.recordCount == 4 && header.firstLSN == 10 && header.previousFrameCRC == 77)
            var seen: [[UInt8]] = []
            #expect(SegmentScanner().decodeBatch(header, stored: UnsafeRawBufferPointer(rebasing: buffer[40..<(40 + Int(header.payloadLength))])) { _, r in seen.append(Array(r)) })
            #expect(seen == records)
            // Bound to its segment: the same bytes do not parse as a frame of another segment.
            guard case .failure(.foreignSegment) = FrameHeader.parse(buffer, at: 0, segmentIDLow: 4, maxPayload: 1 << 20) else {
                Issue.record("a frame must not validate in another segment")
                return
            }
        }
    }
}
