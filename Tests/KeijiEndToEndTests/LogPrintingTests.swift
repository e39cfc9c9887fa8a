import Testing
@testable import keiji

/// `--logs` prints a tail of up to 256 MiB: what it holds for the printing beside the tail itself.
struct LogPrintingTests {
    /// Lines go out a batch (or one long line) at a time, each followed by a newline, in order: they were joined into
    /// one buffer as large as the tail, a second copy of it (`--logs --lines 100000` used 3 times its read budget).
    @Test func aTailIsPrintedABatchAtATime() {
        let batch = 64 << 10
        let short = (0..<100).map { ArraySlice(Array(repeating: UInt8(ascii: "a") + UInt8($0 % 26), count: 4_000)) }
        let long = ArraySlice(Array(repeating: UInt8(ascii: "L"), count: 100_000))
        let lines = Array(short[..<50]) + [long, []] + Array(short[50...])
        var writes: [ArraySlice<UInt8>] = []
        Console.say(byteLines: lines, batch: batch) { writes.append($0) }
        let printed = writes.reduce(into: [UInt8]()) { $0 += $1 }
        let expected = lines.reduce(into: [UInt8]()) { $0 += $1 + [UInt8(ascii: "\n")] }
        let inOrder = printed == expected
        #expect(inOrder)
        let sizes = writes.map(\.count)
        #expect(sizes.allSatisfy { $0 < batch + 4_001 || $0 == long.count }, "\(sizes)")
        #expect(sizes.contains(long.count), "a long line as it is, not copied into a batch: \(sizes)")
    }
}
