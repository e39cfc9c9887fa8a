import KeijiCore
import Testing

@testable import KeijiScheduler

/// The timer heap pops entries in fire-time order (ties in arming order), also after a bulk removal.
struct TimerHeapTests {
    func entry(_ fireAtMs: Int64, _ generation: UInt32) -> TimerEntry {
        TimerEntry(fireAtMs: fireAtMs, slot: fireAtMs / 1000, generation: generation, armedLate: false, task: try! TaskName("t-\(generation)"))
    }

    func drain(_ heap: inout TimerHeap) -> [TimerEntry] {
        var popped: [TimerEntry] = []
        while let next = heap.popMin() { popped.append(next) }
        return popped
    }

    /// An entry per task lives for the scheduler's life (issue 10: ≤ 1 KB a task idle): the flag fits the padding.
    @Test func anEntryIsFortyBytes() {
        #expect(MemoryLayout<TimerEntry>.stride == 40)
    }

    @Test func popsInFireTimeOrderThenArmingOrder() {
        var generator = SystemRandomNumberGenerator()
        var heap = TimerHeap()
        var pushed: [TimerEntry] = []
        for generation in 1...5000 {
            let item = entry(Int64.random(in: 0..<700, using: &generator), UInt32(generation))
            pushed.append(item)
            heap.push(item)
        }
        #expect(heap.count == 5000)
        let popped = drain(&heap)
        let expected = pushed.sorted { ($0.fireAtMs, $0.generation) < ($1.fireAtMs, $1.generation) }
        #expect(popped.map(\.generation) == expected.map(\.generation))
        #expect(heap.isEmpty && heap.popMin() == nil)
    }

    @Test func bulkRemovalKeepsTheRestInOrder() {
        var heap = TimerHeap()
        for generation in 1...2000 { heap.push(entry(Int64((generation * 7919) % 1000), UInt32(generation))) }
        heap.removeAll { $0.generation % 3 == 0 }
        let popped = drain(&heap)
        #expect(popped.count == 2000 - 666)
        #expect(popped.allSatisfy { $0.generation % 3 != 0 })
        #expect(zip(popped, popped.dropFirst()).allSatisfy { ($0.fireAtMs, $0.generation) < ($1.fireAtMs, $1.generation) })
    }
}
