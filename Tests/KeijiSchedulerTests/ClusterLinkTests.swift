import Foundation
import KeijiCore
import Synchronization
import Testing

@testable import KeijiScheduler

/// The cluster link on its own, never opened: every statement fails, as with a database that is away. What it
/// decides before any statement.
struct ClusterLinkTests {
    /// Finish marks are kept however many wait. While `finishBacklogLimit` of them wait the node claims no slot (each
    /// run would add a mark), and says so once. A cap that dropped the marks beyond it let a later clean stop mark the
    /// node stopped with those claims unfinished, and the other nodes ran their slots again.
    @Test func finishMarksAreKeptAndHoldClaimsBackAtTheLimit() async throws {
        let notes = Mutex<[String]>([])
        let url = try #require(URL(string: "postgresql://keiji@127.0.0.1:9/none"))
        let link = ClusterLink(url: url, node: "n", finishBacklogLimit: 3) { line in notes.withLock { $0.append(line) } }
        let ended = (1...5).map { ClaimedSlot(task: "t", slot: Int64($0)) }
        func heldBack() -> [String] { notes.withLock { $0 }.filter { $0.contains("finish marks wait for the database") } }

        link.finished(Array(ended.prefix(2)))
        #expect(await link.claim([ClaimedSlot(task: "t", slot: 10)]) == nil, "the statement fails: the link is not open")
        #expect(heldBack().isEmpty, "below the limit the claim goes to the database: \(notes.withLock { $0 })")

        link.finished(Array(ended.suffix(3)))
        #expect(link.waitingFinishMarks == 5, "no mark is dropped past the limit")
        #expect(await link.claim([ClaimedSlot(task: "t", slot: 11)]) == nil)
        #expect(await link.claim([ClaimedSlot(task: "t", slot: 12)]) == nil)
        #expect(heldBack() == ["cluster: 5 finish marks wait for the database, this node starts no slot until they are sent"],
                "\(notes.withLock { $0 })")
        #expect(link.waitingFinishMarks == 5)
    }
}
