import Testing

@testable import KeijiCore

/// Which node claims a slot first: every node computes the same answer from the same list, the slots spread
/// over the nodes, and a node leaving moves only its own share.
struct SlotPreferenceTests {
    let nodes = ["node-a", "node-b", "node-c"]
    let slots = (0..<3000).map { (task: "task-\($0 % 100)", slot: Int64(1_796_000_000 + $0)) }

    @Test func everyNodeAgreesOnOnePreferredNodePerSlot() {
        for (task, slot) in slots.prefix(300) {
            let preferred = nodes.filter { SlotPreference(nodes: nodes, me: $0).prefersMe(task: task, slot: slot) }
            #expect(preferred.count == 1, "\(task)@\(slot): \(preferred)")
        }
    }

    @Test func theSlotsSpreadOverTheNodes() {
        let preference = SlotPreference(nodes: nodes, me: "node-a")
        var counts: [String: Int] = [:]
        for (task, slot) in slots { counts[preference.preferredNode(task: task, slot: slot), default: 0] += 1 }
        // 1,000 each on average; a fair hash stays well within ±20 %.
        #expect(counts.count == 3 && counts.values.allSatisfy { (800...1200).contains($0) }, "\(counts)")
    }

    @Test func aLeavingNodeMovesOnlyItsOwnShare() {
        let three = SlotPreference(nodes: nodes, me: "node-a"), two = SlotPreference(nodes: ["node-a", "node-b"], me: "node-a")
        for (task, slot) in slots {
            let before = three.preferredNode(task: task, slot: slot)
            if before != "node-c" { #expect(two.preferredNode(task: task, slot: slot) == before) }
        }
        // Alone, or with an empty list, a node claims everything at once.
        #expect(SlotPreference(nodes: [], me: "node-a").prefersMe(task: "t", slot: 1))
    }
}
