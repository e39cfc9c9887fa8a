import Testing

@testable import KeijiCore

/// Which node claims a task's slots first: every node computes the same answer from the same list, the tasks
/// spread over the nodes, and a node leaving moves only its own share.
struct SlotPreferenceTests {
    let nodes = ["node-a", "node-b", "node-c"]
    let tasks = (0..<3000).map { "task-\($0)" }

    @Test func everyNodeAgreesOnOnePreferredNodePerTask() {
        for task in tasks.prefix(300) {
            let preferred = nodes.filter { SlotPreference(nodes: nodes, me: $0).prefersMe(task: task) }
            #expect(preferred.count == 1, "\(task): \(preferred)")
        }
    }

    @Test func theTasksSpreadOverTheNodes() {
        let preference = SlotPreference(nodes: nodes, me: "node-a")
        var counts: [String: Int] = [:]
        for task in tasks { counts[preference.preferredNode(task: task), default: 0] += 1 }
        // 1,000 each on average; a fair hash stays well within ±20 %.
        #expect(counts.count == 3 && counts.values.allSatisfy { (800...1200).contains($0) }, "\(counts)")
    }

    @Test func aLeavingNodeMovesOnlyItsOwnShare() {
        let three = SlotPreference(nodes: nodes, me: "node-a"), two = SlotPreference(nodes: ["node-a", "node-b"], me: "node-a")
        var moved = 0
        for task in tasks {
            let before = three.preferredNode(task: task)
            if before != "node-c" { #expect(two.preferredNode(task: task) == before) } else { moved += 1 }
        }
        #expect(moved > 0, "node-c had a share to give up")
        // Alone, or with an empty list, a node claims everything at once.
        #expect(SlotPreference(nodes: [], me: "node-a").prefersMe(task: "t"))
    }

    /// The weights are part of the cluster's protocol: nodes of one cluster running different builds must agree.
    /// These preferences were computed by an independent implementation of the hash (FNV-1a, SplitMix64's finaliser).
    @Test func theHashIsStable() {
        let expected = ["alpha": "node-b", "gamma": "node-c", "zeta": "node-a", "epsilon": "node-c", "local": "node-b"]
        for (task, node) in expected { #expect(SlotPreference(nodes: nodes, me: "node-a").preferredNode(task: task) == node, "\(task)") }
    }
}
