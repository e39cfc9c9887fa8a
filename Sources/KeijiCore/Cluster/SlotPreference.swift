/// Which live node claims a task's slots first: rendezvous (highest-random-weight) hashing of (node, task) over the
/// live nodes. Every node computes the same answer from the same list, without talking to the others, so the tasks
/// spread over the nodes (rather than the fastest node winning every slot), and when a node leaves or joins only
/// its own share of tasks moves. The others claim a slot only after ``SlotPreference/fallbackDelay``: that is what
/// covers a preferred node that died or stopped before its heartbeat went stale. Claims decide, not this: two
/// nodes that see different lists both claim, and exactly one wins.
///
/// Per task, not per slot: a node sees only its own runs, so a task's overlap policy can be judged only where its
/// runs are. Spread per slot, a `skip` task whose run outlasted its interval had its next slot run on another node
/// at the same time (two of three slots, with three nodes). Its runs' output also stays in one node's log.
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

    /// Whether this node claims the slots of `task` at once.
    public func prefersMe(task: String) -> Bool {
        guard nodes.count > 1 else { return true }
        return preferredNode(task: task) == me
    }

    public func preferredNode(task: String) -> String {
        var best = nodes[0]
        var bestWeight: UInt64 = 0
        for node in nodes {
            let weight = Self.weight(node: node, task: task)
            if weight > bestWeight || (weight == bestWeight && node < best) {
                best = node
                bestWeight = weight
            }
        }
        return best
    }

    /// FNV-1a over the node and task, then SplitMix64's finaliser for the avalanche FNV lacks. Not Swift's
    /// `Hasher`: that is seeded per process, and every node must compute the same weights.
    static func weight(node: String, task: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for byte in node.utf8 { mix(byte) }
        mix(0)
        for byte in task.utf8 { mix(byte) }
        var z = hash &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
