import Foundation
import KeijiJournal

/// A fresh directory under the system temp dir, removed when the value is dropped via `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "journal") {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/keiji-test-\(label)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The bytes a test appends as LSN `lsn`: deterministic, so any record read back can be checked against
/// what was written without keeping a copy. Sizes cycle through tiny, typical and compressible records.
func payload(for lsn: UInt64, size: Int? = nil) -> [UInt8] {
    let length = size ?? [0, 1, 17, 200, 90, 700, 33][Int(lsn % 7)]
    var bytes = [UInt8]()
    bytes.reserveCapacity(length)
    let text = Array("{\"lsn\":\(lsn),\"task\":\"backup-\(lsn % 5)\",\"event\":\"run.started\"} ".utf8)
    while bytes.count < length { bytes.append(text[bytes.count % text.count] ^ UInt8(truncatingIfNeeded: bytes.count / text.count)) }
    return bytes
}

/// Whether `bytes` are `expected`, by `memcmp`: `Array(bytes) == expected` compares a byte at a time through
/// generic code in a debug build, a large share of the tests that read every record back.
func sameBytes(_ bytes: UnsafeRawBufferPointer, _ expected: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count == expected.count else { return false }
    guard !expected.isEmpty else { return true }
    return memcmp(expected.baseAddress!, bytes.baseAddress!, bytes.count) == 0
}

/// Options for tests: small segments so rolls happen, no idle timer, the given file system.
func testOptions(
    io: any JournalIO = PosixJournalIO(), segmentSize: Int = 4096 + 2048, recovery: JournalOptions.RecoveryMode = .strict,
    durability: JournalOptions.Durability = .sync, preallocation: Int = 0
) -> JournalOptions {
    var options = JournalOptions()
    // Off unless asked: most tests pin exact file sizes and layouts; PreallocationTests and the preallocated
    // variants of the crash, truncation and bit-flip tests turn it on.
    options.preallocationBytes = preallocation
    options.io = io
    options.segmentSize = segmentSize
    options.recoveryMode = recovery
    options.durability = durability
    options.idleNoteDelay = nil
    options.compressionThreshold = 64
    options.maxRecordSize = 256 << 10
    options.maxBatchBytes = 64 << 10
    return options
}

/// Appends `payload(for:)` records one by one until LSN `through`, returning the LSNs acknowledged.
@discardableResult
func appendPayloads(_ journal: Journal, through last: UInt64) async throws -> [UInt64] {
    var acknowledged: [UInt64] = []
    while journal.lastLSN < last {
        let next = journal.lastLSN + 1
        let lsn = try await journal.append(payload(for: next))
        precondition(lsn == next, "sequential appends must get consecutive LSNs")
        acknowledged.append(lsn)
    }
    return acknowledged
}

/// Every record must be `payload(for: lsn)` and LSNs must have no holes. Returns the LSNs read.
func verifiedLSNs(_ contents: JournalDirectory, from start: UInt64 = 1) throws -> [UInt64] {
    var lsns: [UInt64] = []
    try contents.forEachRecord(from: start) { lsn, bytes in
        guard payload(for: lsn).withUnsafeBytes({ sameBytes(bytes, $0) }) else { throw TestFailure("LSN \(lsn) holds bytes that were never appended there") }
        if let previous = lsns.last, lsn != previous + 1 { throw TestFailure("hole between LSN \(previous) and \(lsn)") }
        lsns.append(lsn)
    }
    return lsns
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
