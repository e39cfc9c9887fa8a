// libFuzzer harness for the journal's frame scanner: the code that reads segment files a crash, a disk or
// an attacker may have mangled. Built only by scripts/fuzz (KEIJI_FUZZ=1 swift build -sanitize=fuzzer).
//
// Input: one mode byte, then a segment file. Random bytes almost never carry a valid CRC, so the mode can
// ask the harness to make them valid and reach the checks behind the checksum:
//   bit 0: prepend a valid segment header (segment 1, base LSN 1), so the bytes are frames
//   bit 1: rewrite each frame's segment id, clamp its payload length to the file, and fix its CRC
//   bit 2: also chain each frame to the previous frame's CRC
import CFuzzDriver
import Foundation
@testable import KeijiJournal

@main
enum FrameScannerFuzzerMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in data.map { frameScannerFuzzerInput($0, size) } ?? 0 })
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func frameScannerFuzzerInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let name = SegmentName(baseLSN: 1, segmentID: 1)
    if mode & 1 != 0 {
        let header = SegmentHeader(segmentID: 1, baseLSN: 1, createdNanoseconds: 1, previousSegmentID: 0,
                                   previousLastLSN: 0, previousFrameCRC: 0, maxFramePayload: 1 << 16)
        bytes = header.encoded() + bytes
    }
    if mode & 2 != 0 { FrameRepair.validate(&bytes, chain: mode & 4 != 0) }

    let scanner = SegmentScanner()
    var delivered: UInt64 = 0
    var lastLSN: UInt64 = 0
    let scan = scanner.scan(bytes, name: name) { lsn, record in
        // Records come in LSN order, each inside the file.
        precondition(delivered == 0 || lsn == lastLSN + 1, "records out of order")
        precondition(record.count <= bytes.count * 255, "a record larger than any frame could hold")
        lastLSN = lsn
        delivered += 1
    }
    precondition(scan.headerProblem != nil || (scan.validEnd >= SegmentHeader.size && scan.validEnd <= alignedTo8(max(bytes.count, SegmentHeader.size))),
                 "valid end \(scan.validEnd) outside the file")
    precondition(UInt64(scan.recordCount) == delivered, "counted \(scan.recordCount) records, delivered \(delivered)")
    if scan.headerProblem == nil { precondition(scan.nextLSN >= 1) }
    // Evidence gathering past damage and the salvage finder read the same bytes differently.
    IntactFrameFinder().forEachIntactBatch(in: bytes, name: name, from: SegmentHeader.size) { _, _ in }
    _ = scan.damage.map { "\($0.problem)" }
    return 0
}

/// Makes the frames in a fuzzer's bytes pass the checksum, so the fuzzer explores what lies behind it.
enum FrameRepair {
    static func validate(_ bytes: inout [UInt8], chain: Bool) {
        var offset = SegmentHeader.size
        var previous: UInt32 = 0
        while offset + FrameHeader.size <= bytes.count {
            bytes.setInteger(UInt32(1), at: offset + 32)
            let available = bytes.count - offset - FrameHeader.size
            var length = Int(bytes.getInteger(at: offset + 8) as UInt32)
            if length > available {
                length = available
                bytes.setInteger(UInt32(length), at: offset + 8)
            }
            if chain { bytes.setInteger(previous, at: offset + 36) }
            let crc = bytes.withUnsafeBytes {
                CRC32C.mask(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(offset + 4)..<(offset + FrameHeader.size + length)])))
            }
            bytes.setInteger(crc, at: offset)
            previous = crc
            offset += alignedTo8(FrameHeader.size + length)
        }
    }
}
