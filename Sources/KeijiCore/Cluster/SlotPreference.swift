/// Which live node claims a slot first: rendezvous (highest-random-weight) hashing of (node, task, slot) over the
/// live nodes. Every node computes the same answer from the same list, without talking to the others, so the slots
/// of one tick spread over the nodes (rather than the fastest node winning them all), and when a node leaves only
/// its own share moves. The others claim a slot only after ``SlotPreference/fallbackDelay``: that is what covers a
/// preferred node that died or stopped before its heartbeat went stale. Claims decide, not this: two nodes that
/// see different lists both claim, and exactly one wins.
public struct SlotPreference: Sendable, Equatable {
    /// How long a node that is not a slot's preferred node waits before claiming it.
    public static let fallbackDelay: Duration = .milliseconds(250)

    /// The live nodes (sorted, unique).
    public let nodes: [String]
    public let me: String

    public init(nodes: [String], me: String) {
        self.nodes = Array(Set(nodes + [me])).sorted()
        self.me = me
    }

    /// Whether this node claims `slot` of `task` at once.
    public func prefersMe(task: String, slot: Int64) -> Bool {
        guard nodes.count > 1 else { return true }
        return preferredNode(task: task, slot: slot) == me
    }

    public func preferredNode(task: String, slot: Int64) -> String {
        var best = nodes[0]
        var bestWeight: UInt64 = 0
        for node in nodes {
            let weight = Self.weight(node: node, task: task, slot: slot)
            if weight > bestWeight || (weight == bestWeight && node < best) {
                best = node
                bestWeight = weight
            }
        }
        return best
    }

    /// FNV-1a over the node, task and slot, then SplitMix64's finaliser for the avalanche FNV lacks. Not Swift's
    /// `Hasher`: that is seeded per process, and every node must compute the same weights.
    static func weight(node: String, task: String, slot: Int64) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for byte in node.utf8 { mix(byte) }
        mix(0)
        for byte in task.utf8 { mix(byte) }
        mix(0)
        for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: UInt64(bitPattern: slot) >> UInt64(shift))) }
        var z = hash &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
