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
        #expect(try a.claim(Array(slots.prefix(2))).all == [ClaimedSlot(task: "t1", slot: 100), ClaimedSlot(task: "t2", slot: 100)])
        // b wins only what a does not hold; a claiming again gets its own slots back, never b's.
        #expect(try b.claim(slots).all == [ClaimedSlot(task: "t1", slot: 101)])
        #expect(try a.claim(slots).all == [ClaimedSlot(task: "t1", slot: 100), ClaimedSlot(task: "t2", slot: 100)])
        // Once a's run of a slot ended (or a decided not to run it), a claims it no more.
        try a.finish([ClaimedSlot(task: "t2", slot: 100)])
        #expect(try a.claim(slots).all == [ClaimedSlot(task: "t1", slot: 100)])
    }

    /// A finish mark reads the rows it marks, not all of the node's claims, whether the statistics know nothing
    /// of the table (a young one) or nothing of the node (one that joined since), and it marks only this node's
    /// claims; a lookup of who holds slots reads only those slots' rows.
    @Test func finishMarksAndLookUpsReadOnlyTheirSlotsRows() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        // 10,000 finished claims of a (a node's first 10 s at 1,000 slots a second), then 40 running.
        try Self.insertFinishedClaims(10_000, of: a, tasks: 1000, from: 1000)
        let running = (0..<40).map { ClaimedSlot(task: "task-\($0)", slot: 1020) }
        #expect(try a.claim(running.map { ($0.task, $0.slot) }).all.count == 40)
        let other = ClaimedSlot(task: "task-40", slot: 1020)
        #expect(try b.claim([(other.task, other.slot)]).all == [other])

        let rowsRead = try Self.claimRowsRead(on: a, ClusterDatabase.finishStatement, ClusterDatabase.unnestParameters(running + [other]) + ["a"])
        #expect(rowsRead <= 4 * 41, "the mark read \(rowsRead) claim rows for 41 slots")
        #expect(try a.claim(running.map { ($0.task, $0.slot) }).all.isEmpty, "a's marked claims are finished")

        // The fallback's lookup, the same way: by key, and only the slots someone holds come back.
        let unclaimed = ClaimedSlot(task: "task-41", slot: 1020)
        let lookedAt = try Self.claimRowsRead(on: a, ClusterDatabase.holdersStatement, ClusterDatabase.unnestParameters(running + [other, unclaimed]))
        #expect(lookedAt <= 4 * 42, "the lookup read \(lookedAt) claim rows for 42 slots")
        let holders = try a.holders(of: running + [other, unclaimed])
        #expect(holders.count == 41 && holders[other] == "b" && holders[unclaimed] == nil && holders[running[0]] == "a")
        #expect(try b.claim([(other.task, other.slot)]).all == [other], "b's claim is not a's to finish")

        // A node the statistics do not know yet (it joined after the last ANALYZE): its marks read only their rows too.
        try a.connection.query("ANALYZE keiji_claims")
        let c = try ClusterDatabase(url: url, node: "c")
        try Self.insertFinishedClaims(10_000, of: c, tasks: 1000, from: 3000)
        let newcomer = (0..<40).map { ClaimedSlot(task: "task-\($0)", slot: 3020) }
        #expect(try c.claim(newcomer.map { ($0.task, $0.slot) }).all.count == 40)
        let newcomerRead = try Self.claimRowsRead(on: c, ClusterDatabase.finishStatement, ClusterDatabase.unnestParameters(newcomer) + ["c"])
        #expect(newcomerRead <= 4 * 40, "the new node's mark read \(newcomerRead) claim rows for 40 slots")
        #expect(try c.claim(newcomer.map { ($0.task, $0.slot) }).all.isEmpty, "c's marked claims are finished")
    }

    /// The latest claim of each task, whichever node made it: one step of the `(task, slot)` key per task, not a
    /// scan of the task's claims (a week of 1-second slots is 604,800 of them).
    @Test func theLatestClaimOfEachTaskIsOneStepOfTheKey() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        try Self.insertFinishedClaims(10_000, of: a, tasks: 100, from: 1000)
        #expect(try b.claim([("task-1", 1100)]).all.count == 1)
        let tasks = ["task-0", "task-1", "never-claimed"]
        #expect(try a.lastClaimedSlots(of: tasks) == ["task-0": 1099, "task-1": 1100])
        let rowsRead = try Self.claimRowsRead(on: a, ClusterDatabase.lastClaimedStatement, [PostgresConnection.arrayLiteral(tasks)])
        #expect(rowsRead <= 4 * 3, "the lookup read \(rowsRead) claim rows for 3 tasks")
        #expect(try a.lastClaimedSlots(of: []) == [:])
    }

    /// `count` finished claims of `database`'s node, of tasks `task-0` to `task-<tasks - 1>` in turn, each task's
    /// slots one after another from `first`.
    private static func insertFinishedClaims(_ count: Int, of database: ClusterDatabase, tasks: Int, from first: Int) throws {
        try database.connection.query("""
            INSERT INTO keiji_claims (task, slot, node, finished)
            SELECT 'task-' || (i % \(tasks)), \(first) + i / \(tasks), $1, true FROM generate_series(0, \(count - 1)) AS i
            """, [database.node])
    }

    /// Runs `statement` under `EXPLAIN ANALYZE` on `database`'s connection and returns the rows its scans of
    /// `keiji_claims` read (returned or filtered out), over all their loops.
    private static func claimRowsRead(on database: ClusterDatabase, _ statement: String, _ parameters: [String?]) throws -> Double {
        let json = try database.connection.query("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            .compactMap { $0.first ?? nil }.joined()
        func walk(_ node: Any) -> Double {
            guard let plan = node as? [String: Any] else { return (node as? [Any])?.reduce(0) { $0 + walk($1) } ?? 0 }
            var rows = 0.0
            if plan["Relation Name"] as? String == "keiji_claims" {  // PostgreSQL 18 gives fractional averages per loop
                let perLoop = ["Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck"]
                    .reduce(0.0) { $0 + ((plan[$1] as? NSNumber)?.doubleValue ?? 0) }
                rows += perLoop * ((plan["Actual Loops"] as? NSNumber)?.doubleValue ?? 1)
            }
            for (key, value) in plan where key == "Plan" || key == "Plans" { rows += walk(value) }
            return rows
        }
        return walk(try JSONSerialization.jsonObject(with: Data(json.utf8)))
    }

    /// A node claiming slots that are normally another's (after the fallback delay) looks them up first: it gets
    /// the ones nobody holds, its own back, and leaves the other node's rows unlocked (`xmax` stays 0; a claim
    /// that meets a row locks it, which the plain claim shows).
    @Test func slotsLookedUpFirstLeaveAnotherNodesClaimsUnlocked() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        let (s1, s2, s3, s4) = (ClaimedSlot(task: "t", slot: 1), ClaimedSlot(task: "t", slot: 2), ClaimedSlot(task: "t", slot: 3), ClaimedSlot(task: "u", slot: 1))
        #expect(try a.claim([("t", 1), ("t", 2)]).all == [s1, s2])
        #expect(try b.claim([("u", 1)]).all == [s4])
        func lockedRows() throws -> [String] {
            try a.connection.query("SELECT task || '/' || slot FROM keiji_claims WHERE xmax <> 0 ORDER BY 1").compactMap { $0.first ?? nil }
        }
        #expect(try b.claim([], lookingUpFirst: [s1, s2, s3, s4]).all == [s3, s4], "b gets the free slot and its own, not a's")
        let afterLookUp = try lockedRows()
        #expect(!afterLookUp.contains("t/1") && !afterLookUp.contains("t/2"), "a's rows were read, not locked: \(afterLookUp)")
        #expect(try b.claim([("t", 1)]).all == [])
        let afterClaim = try lockedRows()
        #expect(afterClaim.contains("t/1"), "a plain claim locks the row it meets: \(afterClaim)")
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

    /// A workspace other than the one that last joined under a name, or a journal behind the one that applied the
    /// commands, applies the command log from the start: the stored position was another journal's (before, a new
    /// `keiji init` under a stopped node's name skipped every command, and its tasks ran nowhere).
    @Test func aNewWorkspaceOrJournalUnderAUsedNameAppliesTheLogFromTheStart() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let n = try ClusterDatabase(url: url, node: "n")
        let seq = try n.publish([1], task: "x")
        func identity(_ workspace: String, _ lsn: UInt64) -> NodeIdentity { NodeIdentity(timeZone: "UTC", workspaceID: workspace, journalLSN: lsn) }
        #expect(try n.join(identity: identity("w1", 0)) == 0)
        try n.setAppliedSeq(seq, journalLSN: 40)
        #expect(try n.join(identity: identity("w1", 41)) == seq && !n.journalReplaced, "the same workspace and journal keep their position")
        #expect(try n.join(identity: identity("w2", 41)) == 0 && n.journalReplaced, "another workspace starts from the log's start")
        try n.setAppliedSeq(seq, journalLSN: 40)
        #expect(try n.join(identity: identity("w2", 3)) == 0 && n.journalReplaced, "a journal behind the stored one starts from the start")
        try n.setAppliedSeq(seq, journalLSN: 5)
        #expect(try n.join() == seq, "a tool's join (no identity) changes nothing")
    }

    /// A task saved without `--time-zone` fires by each node's TIME_ZONE, so a node whose TIME_ZONE differs from a
    /// live node's is refused (it ran such tasks at other moments); a stopped node's zone does not hold the cluster.
    @Test func aNodeWithAnotherTimeZoneThanALiveNodeIsRefused() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        try a.join(identity: NodeIdentity(timeZone: "Etc/UTC", workspaceID: "wa", journalLSN: 0))
        #expect {
            try b.join(identity: NodeIdentity(timeZone: "Asia/Kolkata", workspaceID: "wb", journalLSN: 0))
        } throws: { error in
            let message = "\(error)"
            return message.contains("TIME_ZONE=Asia/Kolkata differs from node a's TIME_ZONE=Etc/UTC") && !message.contains("\n")
        }
        try b.join(identity: NodeIdentity(timeZone: "Etc/UTC", workspaceID: "wb", journalLSN: 0))
        try a.connection.query("UPDATE keiji_nodes SET stopped = true")
        try b.join(identity: NodeIdentity(timeZone: "Asia/Kolkata", workspaceID: "wb", journalLSN: 0))
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

    /// A dead node's unfinished claims go to exactly one taker, with an interruption counted; a stopped node's
    /// go as never begun; finished claims and live nodes' claims stay where they are.
    @Test func unfinishedClaimsOfDeadOrStoppedNodesAreTakenOverOnce() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let dead = try ClusterDatabase(url: url, node: "dead"), stopped = try ClusterDatabase(url: url, node: "stopped")
        let b = try ClusterDatabase(url: url, node: "b"), c = try ClusterDatabase(url: url, node: "c")
        for node in [dead, stopped, b, c] { try node.join() }
        _ = try dead.claim([("t", 1), ("t", 2), ("u", 1)])
        try dead.finish([ClaimedSlot(task: "t", slot: 1)])
        _ = try stopped.claim([("t", 3)])
        _ = try c.claim([("t", 4)])
        try stopped.leave()
        // Only the stopped node's claim while `dead` still beats.
        #expect(try b.takeOver(afterSeconds: 10) == [TakenOverSlot(task: "t", slot: 3, from: "stopped", fromStoppedNode: true, interruptions: 0)])
        try dead.connection.query("UPDATE keiji_nodes SET heartbeat_at = now() - interval '11 seconds' WHERE name = 'dead'")
        let taken = try c.takeOver(afterSeconds: 10).sorted { ($0.task, $0.slot) < ($1.task, $1.slot) }
        #expect(taken == [TakenOverSlot(task: "t", slot: 2, from: "dead", fromStoppedNode: false, interruptions: 1),
                          TakenOverSlot(task: "u", slot: 1, from: "dead", fromStoppedNode: false, interruptions: 1)])
        #expect(try b.takeOver(afterSeconds: 10).isEmpty, "each claim is taken once")
        #expect(try b.holders(of: [ClaimedSlot(task: "t", slot: 1), ClaimedSlot(task: "t", slot: 2), ClaimedSlot(task: "t", slot: 9)])
                == [ClaimedSlot(task: "t", slot: 1): "dead", ClaimedSlot(task: "t", slot: 2): "c"])
        // The dead node, back, cannot claim its old slot again; the taker holds it.
        #expect(try dead.claim([("t", 2)]).all.isEmpty)
        // It is c's, and said to be taken over: c's takeover queued its run, and c's own timer does not run it too.
        #expect(try c.claim([("t", 2), ("t", 4)]) == HeldSlots(all: [ClaimedSlot(task: "t", slot: 2), ClaimedSlot(task: "t", slot: 4)],
                                                                takenOver: [ClaimedSlot(task: "t", slot: 2)]))
        // c dies too: the slot moves on with its interruptions counted.
        try c.finish([ClaimedSlot(task: "u", slot: 1)])
        try c.connection.query("UPDATE keiji_nodes SET heartbeat_at = now() - interval '11 seconds' WHERE name = 'c'")
        #expect(try b.takeOver(afterSeconds: 10).sorted { $0.slot < $1.slot }
                == [TakenOverSlot(task: "t", slot: 2, from: "c", fromStoppedNode: false, interruptions: 2),
                    TakenOverSlot(task: "t", slot: 4, from: "c", fromStoppedNode: false, interruptions: 1)])
        // What a restarted node settles by its journal: its own unfinished claims, with where each came from.
        _ = try b.claim([("v", 1)])
        #expect(try b.ownUnfinishedClaims() == [OwnClaim(task: "t", slot: 2, takenFrom: "c", interruptions: 2),
                                                OwnClaim(task: "t", slot: 3, takenFrom: "stopped", interruptions: 0),
                                                OwnClaim(task: "t", slot: 4, takenFrom: "c", interruptions: 1), OwnClaim(task: "v", slot: 1)])
        try b.finish([ClaimedSlot(task: "t", slot: 3), ClaimedSlot(task: "v", slot: 1)])
        #expect(try b.ownUnfinishedClaims().map(\.slot) == [2, 4])
        // b stops cleanly before running them: dead nodes held them before, so they are not "never began".
        try b.leave()
        let d = try ClusterDatabase(url: url, node: "d")
        try d.join()
        #expect(try d.takeOver(afterSeconds: 10).sorted { $0.slot < $1.slot }
                == [TakenOverSlot(task: "t", slot: 2, from: "b", fromStoppedNode: false, interruptions: 2),
                    TakenOverSlot(task: "t", slot: 4, from: "b", fromStoppedNode: false, interruptions: 1)])
    }

    /// Old claims go in bounded steps, oldest first: a node deletes its own and those of nodes silent for longer
    /// than the retention, never another live node's, and never a claim younger than the retention.
    @Test func oldClaimsAreForgottenInBoundedStepsByTheirNodeOrOnceTheNodeIsGone() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        let gone = try ClusterDatabase(url: url, node: "gone")
        for node in [a, b, gone] { try node.join() }
        for node in [a, b, gone] { _ = try node.claim((1...5).map { ("\(node.node)-t", Int64($0)) }) }
        // Slots 1-3 of every node are past the retention (slot 1 the oldest); `gone` stopped beating long ago.
        try a.connection.query("UPDATE keiji_claims SET claimed_at = now() - interval '8 days' - slot * interval '1 minute' WHERE slot <= 3")
        try a.connection.query("UPDATE keiji_nodes SET heartbeat_at = now() - interval '8 days' WHERE name = 'gone'")
        func left() throws -> [String] {
            try a.connection.query("SELECT task || '/' || slot FROM keiji_claims ORDER BY 1").compactMap { $0.first ?? nil }
        }

        #expect(try a.forgetOldClaims(limit: 2) == 4, "two of a's, two of gone's: a bounded step per node")
        #expect(try left() == ["a-t/1", "a-t/4", "a-t/5", "b-t/1", "b-t/2", "b-t/3", "b-t/4", "b-t/5", "gone-t/1", "gone-t/4", "gone-t/5"],
                "the oldest went first (slot 3 is the oldest, 3 minutes more than 8 days)")
        #expect(try a.forgetOldClaims(limit: 2) == 2)
        #expect(try a.forgetOldClaims(limit: 2) == 0, "nothing old of a or gone is left")
        #expect(try left() == ["a-t/4", "a-t/5", "b-t/1", "b-t/2", "b-t/3", "b-t/4", "b-t/5", "gone-t/4", "gone-t/5"], "b is alive: its claims are its own to forget")
        #expect(try b.forgetOldClaims() == 3)
        #expect(try left() == ["a-t/4", "a-t/5", "b-t/4", "b-t/5", "gone-t/4", "gone-t/5"])
    }

    /// A clean stop's finish marks and its stopped mark go in one transaction: when the marks fail (a trigger refuses
    /// them here), the node is not marked stopped either, and no other node takes the slots of its ended runs over as
    /// runs that never began; once the database takes the marks, both are in.
    @Test func aLeaveMarksTheNodeStoppedOnlyWithItsFinishMarks() throws {
        let (url, drop) = try TestPostgres.makeDatabase()
        defer { drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        for node in [a, b] { try node.join() }
        let (ended, neverBegan) = (ClaimedSlot(task: "t", slot: 1), ClaimedSlot(task: "t", slot: 2))
        #expect(try a.claim([("t", 1), ("t", 2)]).all == [ended, neverBegan])
        try a.connection.execute("""
            CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
            CREATE TRIGGER refuse_finish BEFORE UPDATE ON keiji_claims FOR EACH ROW WHEN (NEW.finished AND NOT OLD.finished)
                EXECUTE FUNCTION refuse_finish()
            """)
        #expect(throws: (any Error).self) { try a.leave(finishing: [ended]) }
        #expect(try b.takeOver(afterSeconds: 10).isEmpty, "a is not marked stopped without its finish marks")
        try a.connection.execute("DROP TRIGGER refuse_finish ON keiji_claims")
        try a.leave(finishing: [ended])
        #expect(try b.takeOver(afterSeconds: 10) == [TakenOverSlot(task: "t", slot: 2, from: "a", fromStoppedNode: true, interruptions: 0)])
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
