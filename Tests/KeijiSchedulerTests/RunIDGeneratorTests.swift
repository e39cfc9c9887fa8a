import Testing

@testable import KeijiScheduler

/// Run IDs keep their shape (12 lowercase hex digits) and never repeat within a scheduler's life.
struct RunIDGeneratorTests {
    @Test func idsAreTwelveHexDigitsAndDistinct() {
        var generator = RunIDGenerator()
        var seen: Set<String> = []
        for _ in 0..<200_000 {
            let id = generator.next()
            #expect(id.utf8.count == 12 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }, "\(id)")
            seen.insert(id)
        }
        #expect(seen.count == 200_000)
    }

    /// The mix is a bijection of 48-bit values: checked on a window of consecutive inputs at both ends of the range
    /// (where the counter wraps), none of them mapped onto another.
    @Test func theMixNeverMapsTwoCountersToOneID() {
        let top: UInt64 = (1 << 48) - 1
        let inputs = Array(0..<UInt64(100_000)) + Array((top - 100_000)...top)
        let outputs = Set(inputs.map(RunIDGenerator.scramble))
        #expect(outputs.count == inputs.count)
        #expect(outputs.allSatisfy { $0 <= top })
    }

    /// Two schedulers (a restart, another node) start from their own random points.
    @Test func twoGeneratorsStartApart() {
        var first = RunIDGenerator()
        var second = RunIDGenerator()
        #expect(first.next() != second.next())
    }
}
