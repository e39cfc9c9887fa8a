import Foundation
import Testing

@testable import KeijiCore

/// The cluster's tables on the real test server: claims won once, the command log in order, a node name held by
/// a live process refused, and a connection the server cut re-made without losing the statement.
@Suite(.enabled(if: TestPostgres.available, TestPostgres.skipReason))
struct ClusterDatabaseTests {
    @Test func eachSlotIsWonByOneNodeAndStaysItsOwn() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        let slots = [("t1", Int64(100)), ("t2", 100), ("t1", 101)]
        #expect(try a.claim(Array(slots.prefix(2))) == [ClaimedSlot(task: "t1", slot: 100), ClaimedSlot(task: "t2", slot: 100)])
        // b wins only what a does not hold; a claiming again gets its own slots back, never b's.
        #expect(try b.claim(slots) == [ClaimedSlot(task: "t1", slot: 101)])
        #expect(try a.claim(slots) == [ClaimedSlot(task: "t1", slot: 100), ClaimedSlot(task: "t2", slot: 100)])
    }

    @Test func commandsComeBackInTheOrderTheyWerePublished() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        let first = try a.publish([1, 2, 255], task: "x")
        let second = try b.publish([], task: "y")
        #expect(second > first)
        let read = try b.commands(after: 0)
        #expect(read.map(\.seq) == [first, second] && read.map(\.record) == [[1, 2, 255], []])
        #expect(try a.commands(after: first).map(\.seq) == [second])
        try a.join()
        try a.setAppliedSeq(second)
        #expect(try a.join() == second, "a node's applied seq survives its restart")
    }

    @Test func aNodeNameHeldByALiveProcessIsRefused() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        try ClusterDatabase(url: url, node: "n").join(pid: getpid())
        // Another live process on this host under the same name (pid 1 is alive, and not us).
        #expect(throws: KeijiError.self) { try ClusterDatabase(url: url, node: "n").join(pid: 1) }
        let nodes = try ClusterDatabase.nodes(on: PostgresConnection(url: url))
        #expect(nodes.map(\.name) == ["n"] && nodes[0].isAlive)
    }

    /// `pg_terminate_backend` (or a server restart) breaks the connection: the next statement reconnects and
    /// is run, instead of failing once (a claim that failed would drop a tick's slots).
    @Test func aStatementAfterTheServerCutTheConnectionIsRunOnANewOne() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let connection = try PostgresConnection(url: url)
        let pid = try #require(connection.query("SELECT pg_backend_pid()").first?.first ?? nil)
        #expect(try PostgresConnection(url: url).query("SELECT pg_terminate_backend($1::int)", [pid]).first?.first == "t")
        #expect(try connection.query("SELECT 41 + 1").first?.first == "42")
        #expect(try connection.query("SELECT pg_backend_pid()").first?.first != pid)
    }
}
