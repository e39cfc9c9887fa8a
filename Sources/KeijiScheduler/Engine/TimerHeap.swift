import KeijiCore

/// One armed firing: task `task` is due at `fireAtMs` (wall milliseconds) for `slot`, or for its queued
/// manual triggers when `slot` is ``TimerEntry/manual``. `generation` tells a live entry from one left behind
/// by a re-arm (entries are never removed from the middle of the heap; stale ones are dropped when popped).
struct TimerEntry {
    static let manual = Int64.min

    var fireAtMs: Int64
    var slot: Int64
    var generation: UInt32
    /// Armed when its moment had already passed: the task came from another node of a cluster, where it was
    /// made a while ago (its slots count from then), or its schedule waited for its catch-up runs (or the start) past
    /// it, so the slots it finds passed are no stall of this process. (Enabling or resolving a task starts its count
    /// again, at that moment.) Fits the padding after `generation`: an entry stays 40 bytes.
    var armedLate: Bool
    var task: TaskName

    var isManual: Bool { slot == Self.manual }
}

/// The scheduler's one timer structure: a 4-ary min-heap of ``TimerEntry`` keyed by fire time (Go's runtime
/// timers use the same shape). A 4-ary heap is half as deep as a binary one, and its four children sit next
/// to each other in memory, so a pop at 100,000 entries touches ~9 cache lines, not ~17.
///
/// Ties are broken by generation (arming order), so tasks due at the same instant fire in the order armed.
struct TimerHeap {
    private(set) var entries: [TimerEntry] = []

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var min: TimerEntry? { entries.first }

    mutating func reserveCapacity(_ capacity: Int) { entries.reserveCapacity(capacity) }

    mutating func push(_ entry: TimerEntry) {
        entries.append(entry)
        siftUp(entries.count - 1)
    }

    @discardableResult
    mutating func popMin() -> TimerEntry? {
        guard let first = entries.first else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(0)
        }
        return first
    }

    /// Drops the entries `isStale` picks and restores the heap order in O(n) (Floyd's construction).
    mutating func removeAll(where isStale: (TimerEntry) -> Bool) {
        entries.removeAll(where: isStale)
        guard entries.count > 1 else { return }
        for index in stride(from: (entries.count - 2) / 4, through: 0, by: -1) { siftDown(index) }
    }

    private static func precedes(_ a: TimerEntry, _ b: TimerEntry) -> Bool {
        a.fireAtMs != b.fireAtMs ? a.fireAtMs < b.fireAtMs : a.generation &- b.generation > UInt32.max / 2
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        let entry = entries[child]
        while child > 0 {
            let parent = (child - 1) / 4
            guard Self.precedes(entry, entries[parent]) else { break }
            entries[child] = entries[parent]
            child = parent
        }
        entries[child] = entry
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let entry = entries[parent]
        let count = entries.count
        while true {
            let first = parent * 4 + 1
            guard first < count else { break }
            var best = first
            for candidate in (first + 1)..<Swift.min(first + 4, count) where Self.precedes(entries[candidate], entries[best]) {
                best = candidate
            }
            guard Self.precedes(entries[best], entry) else { break }
            entries[parent] = entries[best]
            parent = best
        }
        entries[parent] = entry
    }
}
