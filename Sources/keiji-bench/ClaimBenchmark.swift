import ArgumentParser
import Foundation
import KeijiCore

/// `keiji-bench claims`: what the cluster's statements cost on a PostgreSQL server, against the server's own
/// floor measured in the same run (`SELECT 1`: one round trip, no work) and a plain one-row commit (`INSERT`
/// of one row: a round trip and a commit, the least a durable write costs there). The figures feed the capacity
/// arithmetic in docs/benchmarks.md: a claim statement costs a fixed part (round trip, commit) and a part per
/// slot, and a cluster makes one claim row per slot per node (the winner's and the others' losing ones).
struct ClaimBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claims",
        abstract: "Cluster statement costs (claims by batch size, lost claims, finish marks, heartbeat) ÷ the server's round trip."
    )

    @Option(help: "A PostgreSQL URL (default: $KEIJI_TEST_POSTGRES_URL, as scripts/test-postgres sets it).")
    var dbURL: String?
    @Option(help: "Statements per measurement (10–100000).") var statements = 300

    func validate() throws {
        guard (10...100_000).contains(statements) else { throw ValidationError("--statements must be between 10 and 100000 (got \(statements))") }
    }

    func run() throws {
        guard let text = dbURL ?? ProcessInfo.processInfo.environment["KEIJI_TEST_POSTGRES_URL"], let url = URL(string: text) else {
            throw ValidationError("give --db-url postgres://… (or run under scripts/test-postgres)")
        }
        // Task names of this run only; its rows are deleted at the end.
        let prefix = "bench-" + UUID().uuidString.prefix(8).lowercased() + "-"
        let me = try ClusterDatabase(url: url, node: prefix + "me"), other = try ClusterDatabase(url: url, node: prefix + "other")
        try me.join()
        try other.join()
        defer {
            _ = try? me.connection.query("DELETE FROM keiji_claims WHERE task LIKE $1", [prefix + "%"])
            _ = try? me.connection.query("DELETE FROM keiji_nodes WHERE name LIKE $1", [prefix + "%"])
            _ = try? me.connection.query("DROP TABLE IF EXISTS keiji_bench_commit")
        }
        try me.connection.execute("CREATE TABLE IF NOT EXISTS keiji_bench_commit (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ DEFAULT now())")

        var rows: [(String, Int, LatencySummary)] = []
        func measure(_ label: String, slotsPerStatement: Int = 0, _ body: (Int) throws -> Void) rethrows {
            var samples = LatencySamples(expectedCount: statements)
            for index in 0..<statements {
                let started = MonotonicClock.now()
                try body(index)
                samples.record(MonotonicClock.now() - started)
            }
            rows.append((label, slotsPerStatement, samples.summary()!))
        }
        var slot: Int64 = 0
        func fresh(_ count: Int) -> [(task: String, slot: Int64)] {
            defer { slot += 1 }
            return (0..<count).map { (prefix + String($0), slot) }
        }
        try measure("SELECT 1 (round trip, the floor)") { _ in _ = try me.connection.query("SELECT 1") }
        try measure("INSERT 1 row (round trip + commit)") { _ in _ = try me.connection.query("INSERT INTO keiji_bench_commit DEFAULT VALUES") }
        var hundreds: Int64 = 0  // the first slot of the 100-slot round
        for size in [1, 10, 100, 1000] {
            if size == 100 { hundreds = slot }
            try measure("claim, won", slotsPerStatement: size) { _ in _ = try me.claim(fresh(size)) }
        }
        func round(_ index: Int) -> [(task: String, slot: Int64)] { (0..<100).map { (prefix + String($0), hundreds + Int64(index)) } }
        // The other node claims what `me` holds: the (nodes − 1) losing claims every slot gets in a cluster.
        try measure("claim, lost (held by another)", slotsPerStatement: 100) { index in _ = try other.claim(round(index)) }
        // A node's unfinished claims are its runs in flight: the rest are finished, as a running node's would be.
        try me.connection.query("UPDATE keiji_claims SET finished = (slot < $2 OR slot >= $3) WHERE task LIKE $1",
                                [prefix + "%", String(hundreds), String(hundreds + Int64(statements))])
        try measure("finish marks", slotsPerStatement: 100) { index in try me.finish(round(index).map { ClaimedSlot(task: $0.task, slot: $0.slot) }) }
        try measure("heartbeat (+ live nodes)") { _ in _ = try me.heartbeat() }
        try measure("take over (nothing to take)") { _ in _ = try me.takeOver(afterSeconds: ClusterDatabase.heartbeatTimeoutSeconds) }

        let floor = rows[0].2.p50Microseconds
        print("keiji-bench claims   \(ISO8601DateFormatter().string(from: Date()))   load average \(SpawnBenchmark.loadAverage())")
        print("server: \(me.connection.name), \(statements) statements per row, one connection, one after another")
        var table = TextTable(["statement", "slots", "p50", "p99", "p50 ÷ round trip", "per slot (p50)"],
                              alignments: [.left, .right, .right, .right, .right, .right])
        for (label, slots, summary) in rows {
            table.add([label, slots == 0 ? "-" : String(slots), FigureFormat.latency(microseconds: summary.p50Microseconds),
                       FigureFormat.latency(microseconds: summary.p99Microseconds), FigureFormat.fixed(summary.p50Microseconds / floor, 1) + "×",
                       slots == 0 ? "-" : FigureFormat.latency(microseconds: summary.p50Microseconds / Double(slots))])
        }
        print(table.render())
    }
}
