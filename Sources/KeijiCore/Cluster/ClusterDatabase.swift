import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The cluster's shared tables in the `DB_URL` database: who the nodes are, which node runs each slot, and the
/// commands (task definitions and their changes) every node applies in one order.
///
/// Leaderless claims: every node decides its due slots itself and claims them, all of one tick in one statement;
/// the primary key (task, slot) lets exactly one node win each (`INSERT … ON CONFLICT DO …`, as graphile-worker's
/// `known_crontabs` and Temporal's workflow id per nominal time do). There is no leader to elect, so no window in
/// which two leaders fire (the peers' duplicate runs) or none does (their missed ones). Times are the database's
/// (`now()`), never a node's clock.
///
/// Commands are sequenced by the database: a node publishes a command (``publish(_:task:)``), and every node, the
/// publisher included, applies the commands in `seq` order (``commands(after:limit:)``), so all of them end with
/// the same definitions whatever order they were sent in. Each node keeps how far it has applied in its row
/// (`applied_seq`); re-applying a command after a crash changes nothing (a delete of a deleted task is skipped).
///
/// Blocking (libpq): the scheduler calls it from a thread of its own (`ClusterLink`).
public final class ClusterDatabase {
    public let connection: PostgresConnection
    public let node: String

    /// The tables (and their index), created by whichever node comes first; `CREATE TABLE IF NOT EXISTS` is not
    /// safe against a concurrent twin (both may insert the type row), so creation holds an advisory lock.
    static let schema = """
        SELECT pg_advisory_xact_lock(7396051);
        CREATE TABLE IF NOT EXISTS keiji_nodes (
            name TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            started_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL, stopped BOOLEAN NOT NULL DEFAULT false,
            applied_seq BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS keiji_commands (
            seq BIGSERIAL PRIMARY KEY, node TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(), task TEXT NOT NULL, record BYTEA NOT NULL
        );
        CREATE TABLE IF NOT EXISTS keiji_claims (
            task TEXT NOT NULL, slot BIGINT NOT NULL, node TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (task, slot)
        );
        CREATE INDEX IF NOT EXISTS keiji_claims_by_node ON keiji_claims (node, claimed_at);
        ALTER TABLE keiji_claims ADD COLUMN IF NOT EXISTS finished BOOLEAN NOT NULL DEFAULT false,
            ADD COLUMN IF NOT EXISTS interruptions INTEGER NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS taken_from TEXT;
        CREATE INDEX IF NOT EXISTS keiji_claims_unfinished ON keiji_claims (node) WHERE NOT finished;
        ALTER TABLE keiji_nodes ADD COLUMN IF NOT EXISTS time_zone TEXT, ADD COLUMN IF NOT EXISTS workspace_id TEXT,
            ADD COLUMN IF NOT EXISTS journal_lsn BIGINT;
        """

    /// How long claims are kept: a slot older than this may be claimed again (by a catch-up after every node was
    /// down for longer). Deleted in bulk by ``forgetOldClaims()``.
    public static let claimRetention = "7 days"
    /// A node whose heartbeat is older than this is shown as lost, and its name may be taken by another process.
    public static let heartbeatTimeoutSeconds = 10

    /// A claim acknowledged by a server that then crashes must not be lost (the slot would run twice), whatever
    /// the server's default: `synchronous_commit=on` for the session (a URL's own `options` still wins). A CLI
    /// call's shared session, which the cluster's statements use too, has the same.
    static let sessionOptions = "-c synchronous_commit=on"

    public init(url: URL, node: String) throws {
        connection = try PostgresConnection.open(url: url, name: Settings.Database.postgres(url).description, options: Self.sessionOptions)
        self.node = node
        // Only when something is missing: `ALTER TABLE … ADD COLUMN IF NOT EXISTS` and `CREATE INDEX IF NOT EXISTS`
        // lock the table even when there is nothing to do, and every offline CLI command opens a ClusterDatabase,
        // so each would pause every node's claims.
        let present = try connection.query(Self.schemaPresent)
        guard present.first?.first != "t" else { return }
        try connection.transaction {
            try connection.execute(Self.schema)
            try connection.execute(ClusterBinaries.schema)
        }
    }

    /// True when the last object each schema statement creates exists (both run in one transaction, so all or
    /// none exist). A schema change adds its newest object here, or no node would ever apply it. The catalog, not
    /// `information_schema`: planning that view's joins took the server ~5 ms at every CLI command.
    static let schemaPresent = """
        SELECT to_regclass('keiji_claims_unfinished') IS NOT NULL AND to_regclass('keiji_binary_parts') IS NOT NULL
           AND EXISTS (SELECT 1 FROM pg_attribute
                       WHERE attrelid = to_regclass('keiji_commands') AND attname = 'binary_sha256' AND NOT attisdropped)
           AND EXISTS (SELECT 1 FROM pg_attribute
                       WHERE attrelid = to_regclass('keiji_nodes') AND attname = 'journal_lsn' AND NOT attisdropped)
        """

    /// Enters this process as node `node`. Refused while another live process holds the name: one whose
    /// heartbeat is recent, unless it ran on this host and its pid is gone or a zombie (a node restarted after
    /// kill -9, or after a stop that could not mark it stopped, takes its name back at once). Two processes
    /// claiming under one name would both win the same slots.
    ///
    /// `identity` (the scheduler's; nil for tools): refused while a live node runs with another `TIME_ZONE`, since a
    /// task saved without `--time-zone` fires by each node's own TIME_ZONE and the nodes would run it at different
    /// moments. And a workspace other than the one that last joined under this name, or a journal behind the one
    /// that applied the commands (a new `keiji init`, a rebuilt machine under the same host name), applies the
    /// command log from the start (``journalReplaced`` says so): the stored position was another journal's, and
    /// the new one skipped every command before it.
    /// - Returns: the last command `seq` this node has applied.
    @discardableResult
    public func join(pid: Int32 = getpid(), host: String = Settings.hostName(), identity: NodeIdentity? = nil) throws -> Int64 {
        try connection.transaction {
            try connection.execute("SELECT pg_advisory_xact_lock(7396052)")
            let rows = try connection.query("""
                SELECT host, pid, extract(epoch FROM now() - heartbeat_at)::float8, stopped, applied_seq, workspace_id, journal_lsn
                FROM keiji_nodes WHERE name = $1 FOR UPDATE
                """, [node])
            if let row = rows.first, let holder = row[0], let holderPID = row[1].flatMap({ Int32($0) }),
               let age = row[2].flatMap({ Double($0) }), age < Double(Self.heartbeatTimeoutSeconds), row[3] == "f", holderPID != pid,
               holder != host || LiveProcess.isRunning(holderPID) {
                throw KeijiError(.conflict, "\(connection.name): NODE_NAME=\(node) is in use by the scheduler pid \(holderPID) on \(holder) "
                                 + "(heartbeat \(String(format: "%.1f", age)) s ago); give each node its own NODE_NAME")
            }
            if let identity, let other = try connection.query("""
                SELECT name, time_zone FROM keiji_nodes
                WHERE name <> $1 AND NOT stopped AND heartbeat_at > now() - make_interval(secs => $3::float8)
                  AND time_zone IS NOT NULL AND time_zone <> $2
                ORDER BY name COLLATE "C" LIMIT 1
                """, [node, identity.timeZone, String(Self.heartbeatTimeoutSeconds)]).first, let name = other[0], let zone = other[1] {
                throw KeijiError(.conflict, "\(connection.name): TIME_ZONE=\(identity.timeZone) differs from node \(name)'s TIME_ZONE=\(zone); "
                                 + "every node of a cluster needs the same TIME_ZONE (tasks without --time-zone fire by it): set TIME_ZONE=\(zone)")
            }
            try connection.query("""
                INSERT INTO keiji_nodes (name, host, pid, started_at, heartbeat_at, time_zone, workspace_id) VALUES ($1, $2, $3, now(), now(), $4, $5)
                ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid, started_at = now(), heartbeat_at = now(), stopped = false,
                    time_zone = COALESCE(excluded.time_zone, keiji_nodes.time_zone), workspace_id = COALESCE(excluded.workspace_id, keiji_nodes.workspace_id)
                """, [node, host, String(pid), identity?.timeZone, identity?.workspaceID])
            let applied = rows.first?[4].flatMap { Int64($0) } ?? 0
            lastBeatSecondsAgo = rows.first?[2].flatMap { Double($0) }
            journalReplaced = false
            if let identity, applied > 0, let row = rows.first {
                let otherWorkspace = row[5].map { $0 != identity.workspaceID } ?? false
                let journalBehind = row[6].flatMap { UInt64($0) }.map { identity.journalLSN < $0 } ?? false
                if otherWorkspace || journalBehind {
                    try connection.query("UPDATE keiji_nodes SET applied_seq = 0, journal_lsn = NULL WHERE name = $1", [node])
                    journalReplaced = true
                    return 0
                }
            }
            return applied
        }
    }

    /// Set by ``join(pid:host:identity:)``: how long ago, on the database's clock, this node's last heartbeat before
    /// the join was (nil: its first join). A restart counts the slots that passed while it was down from then.
    public private(set) var lastBeatSecondsAgo: Double?

    /// Set by ``join(pid:host:identity:)``: the node's stored position belonged to another workspace or journal,
    /// and this one applies the command log from the start.
    public private(set) var journalReplaced = false

    /// Appends a command (a journal entry's bytes, its time included, so every node derives the same anchors
    /// from it) and returns its `seq`. Insertions are serialised (a transaction-scoped advisory lock), so `seq`s
    /// commit in order and a reader that has seen `seq` n has seen every command before it. `binary`: the SHA-256
    /// of the task binary the command needs, stored already (``ClusterBinaries``).
    ///
    /// `creating`: a create (`--create` without `--force`), refused with `.alreadyExists` when the log's latest
    /// command for `task` is anything but a delete, checked under the same lock: two nodes creating one name at
    /// once both passed their own checks, and both reported "created" while the later save replaced the other.
    public func publish(_ record: [UInt8], task: String, binary: String? = nil, creating: Bool = false) throws -> Int64 {
        let insert = """
            WITH serialised AS (SELECT pg_advisory_xact_lock(7396053))
            INSERT INTO keiji_commands (node, task, record, binary_sha256) SELECT $1, $2, decode($3, 'hex'), $4 FROM serialised RETURNING seq
            """
        let parameters = [node, task, Self.hex(record), binary]
        let rows = try creating ? connection.transaction {
            try connection.execute("SELECT pg_advisory_xact_lock(7396053)")
            try refuseExisting(task)
            return try connection.query(insert, parameters)
        } : connection.query(insert, parameters)
        guard let seq = rows.first?.first ?? nil, let value = Int64(seq) else {
            throw KeijiError(.database, "\(connection.name): publishing a command returned no seq")
        }
        return value
    }

    /// Throws `.alreadyExists` when the command log's latest command for `task` leaves it existing (not a delete).
    private func refuseExisting(_ task: String) throws {
        guard let row = try connection.query("""
            SELECT seq, node, encode(record, 'hex') FROM keiji_commands WHERE task = $1 ORDER BY seq DESC LIMIT 1
            """, [task]).first, let seq = row[0], let by = row[1], let bytes = row[2].flatMap(Self.bytes(fromHex:)) else { return }
        if case .taskDeleted = try? JournalEntry.decode(bytes).event { return }
        throw KeijiError(.alreadyExists, "task \(task) already exists in the cluster (command \(seq) of its log, made on \(by)); "
                         + "use --force to recreate it")
    }

    /// Every task name the command log has a command for (deleted ones included), and whether this node
    /// published any of them.
    public func taskNamesInCommands() throws -> [String: Bool] {
        var names: [String: Bool] = [:]
        for row in try connection.query("SELECT task, bool_or(node = $1) FROM keiji_commands GROUP BY task", [node]) {
            if let task = row[0] { names[task] = row[1] == "t" }
        }
        return names
    }

    /// The task ids (``JournalEntry/Event/taskSaved(_:taskID:)``) the command log's saves of each of `tasks` carry.
    public func savedTaskIDs(of tasks: [String]) throws -> [String: Set<String>] {
        guard !tasks.isEmpty else { return [:] }
        var ids: [String: Set<String>] = [:]
        for row in try connection.query("SELECT task, encode(record, 'hex') FROM keiji_commands WHERE task = ANY($1::text[])",
                                        [PostgresConnection.arrayLiteral(tasks)]) {
            guard let task = row[0], let bytes = row[1].flatMap(Self.bytes(fromHex:)),
                  case .taskSaved(_, let taskID) = try? JournalEntry.decode(bytes).event else { continue }
            ids[task, default: []].insert(taskID)
        }
        return ids
    }

    /// The latest command of each of `tasks` that has one, decoded (one that cannot be decoded is left out).
    public func latestCommands(of tasks: [String]) throws -> [String: JournalEntry] {
        guard !tasks.isEmpty else { return [:] }
        var latest: [String: JournalEntry] = [:]
        for row in try connection.query("""
            SELECT DISTINCT ON (task) task, encode(record, 'hex') FROM keiji_commands WHERE task = ANY($1::text[]) ORDER BY task, seq DESC
            """, [PostgresConnection.arrayLiteral(tasks)]) {
            guard let task = row[0], let bytes = row[1].flatMap(Self.bytes(fromHex:)), let entry = try? JournalEntry.decode(bytes) else { continue }
            latest[task] = entry
        }
        return latest
    }

    /// Commands after `seq`, in order: (seq, the journal entry's bytes, the SHA-256 of the binary it needs).
    public func commands(after seq: Int64, limit: Int = 1000) throws -> [(seq: Int64, record: [UInt8], binary: String?)] {
        try connection.query("SELECT seq, encode(record, 'hex'), binary_sha256 FROM keiji_commands WHERE seq > $1 ORDER BY seq LIMIT $2",
                             [String(seq), String(limit)]).compactMap { row in
            guard let seq = row[0].flatMap({ Int64($0) }), let bytes = row[1].flatMap(Self.bytes(fromHex:)) else { return nil }
            return (seq, bytes, row[2])
        }
    }

    /// Records how far this node has applied the commands.
    /// `journalLSN`: the journal's last LSN once those commands are applied (``join(pid:host:identity:)`` compares it).
    public func setAppliedSeq(_ seq: Int64, journalLSN: UInt64? = nil) throws {
        try connection.query("UPDATE keiji_nodes SET applied_seq = GREATEST(applied_seq, $2), journal_lsn = GREATEST(journal_lsn, $3::bigint) WHERE name = $1",
                             [node, String(seq), journalLSN.map(String.init)])
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: nil
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = value(utf8[index]), let low = value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// Marks this node alive (the database's clock) and returns the names of the live nodes, this one included:
    /// not stopped, with a heartbeat within ``heartbeatTimeoutSeconds``. The time is when the statement began
    /// (`now()`): a beat that waits for its row (locked by another transaction) records an old heartbeat, which
    /// ``ClusterHeartbeat`` knows.
    public func heartbeat() throws -> [String] {
        try connection.query("""
            WITH beat AS (UPDATE keiji_nodes SET heartbeat_at = now(), stopped = false WHERE name = $1 RETURNING name)
            SELECT name FROM keiji_nodes WHERE (NOT stopped AND heartbeat_at > now() - make_interval(secs => $2::float8))
                OR name IN (SELECT name FROM beat)
            ORDER BY name
            """, [node, String(Self.heartbeatTimeoutSeconds)]).compactMap { $0.first ?? nil }
    }

    /// Marks this node stopped (a clean stop): the others stop leaving it its share of the slots at once. In one
    /// transaction with the finish marks of `slots`, the runs that ended here and are not marked yet: the others
    /// take a stopped node's unfinished claims over as runs that never began, and run them. Both or neither.
    public func leave(finishing slots: [ClaimedSlot] = []) throws {
        try connection.transaction {
            try finish(slots)
            try connection.query("UPDATE keiji_nodes SET stopped = true WHERE name = $1", [node])
        }
    }

    /// Claims `slots` (task, slot in seconds since the epoch) for this node in one statement and returns those
    /// it holds: the ones it won now and the unfinished ones it had won before (a restarted node may finish what
    /// it claimed before a crash). A slot another node holds is not returned, nor one whose run this node ended
    /// or decided not to run (a restart's catch-up ran a slot it had just taken over and decided not to re-run).
    /// The answer says which of the slots held were taken over from another node (``HeldSlots/takenOver``).
    ///
    /// Rows are claimed in (task, slot) order, by every node: a losing claim locks the row it loses (`ON CONFLICT
    /// DO UPDATE … WHERE` locks even when it updates nothing), and two nodes locking the same slots in different
    /// orders deadlocked (the benchmark saw a second's wait, then an error, on every few ticks).
    public func claim(_ slots: [(task: String, slot: Int64)]) throws -> HeldSlots {
        guard !slots.isEmpty else { return HeldSlots() }
        let rows = try connection.query("""
            INSERT INTO keiji_claims (task, slot, node) SELECT t, s, $3 FROM unnest($1::text[], $2::bigint[]) AS u(t, s) ORDER BY t COLLATE "C", s
            ON CONFLICT (task, slot) DO UPDATE SET node = excluded.node WHERE keiji_claims.node = excluded.node AND NOT keiji_claims.finished
            RETURNING task, slot, taken_from IS NOT NULL
            """, Self.unnestParameters(slots.map { ClaimedSlot(task: $0.task, slot: $0.slot) }) + [node])
        var held = HeldSlots()
        for row in rows {
            guard let task = row[0], let slot = row[1].flatMap({ Int64($0) }) else { continue }
            held.all.insert(ClaimedSlot(task: task, slot: slot))
            if row[2] == "t" { held.takenOver.insert(ClaimedSlot(task: task, slot: slot)) }
        }
        return held
    }

    /// Claims `slots` and `lookUps` for this node, and returns the ones it holds. `lookUps` are slots another
    /// node has normally claimed already (a node claims the slots preferred for others only after the fallback
    /// delay): they are looked up first, and only those no other node holds are claimed. A claim that meets
    /// another node's row locks it until its transaction commits, and that commit waits for a WAL flush: under
    /// load the holder's own statements on those rows (marking its runs finished) queued behind such locks, its
    /// claims behind those, and every node's firings fell seconds behind. The lookup is a read and locks nothing.
    /// Leaving out what another node holds changes no answer: a claim moves only by a takeover, and never to a
    /// node that did not take it.
    public func claim(_ slots: Set<ClaimedSlot>, lookingUpFirst lookUps: Set<ClaimedSlot>) throws -> HeldSlots {
        var wanted = slots.union(lookUps)
        if !lookUps.isEmpty {
            for (slot, holder) in try holders(of: Array(lookUps)) where holder != node { wanted.remove(slot) }
        }
        return try claim(wanted.map { ($0.task, $0.slot) })
    }

    /// Marks the runs of `slots` ended (their last attempt finished, whatever its outcome): a claim left
    /// unfinished by a node that dies or stops is taken over by another (``takeOver(afterSeconds:withinSeconds:)``).
    ///
    /// Each row is found by its primary key in a scalar subquery, which the planner cannot turn into a join, and
    /// locked there (`FOR UPDATE`) in (task, slot) order, the order claims lock rows in. As a join (`FROM
    /// unnest(…)` with a `LATERAL` lookup), the planner read all of the node's claims through
    /// `keiji_claims_by_node` for every mark of a young table: 5.3 ms per mark of 41 slots in the benchmark, about
    /// 40 % of the database's CPU. The node is compared as `(node = $3) IS TRUE`, which no index answers: with
    /// `node = $3` the planner did the same whenever the statistics said the node had few claims (a node that
    /// joined after the last `ANALYZE`); with `NOT finished` in the lookup it scanned the unfinished claims' index
    /// once per slot. A claim taken over meanwhile is re-checked after the lock wait and left alone.
    public func finish(_ slots: [ClaimedSlot]) throws {
        guard !slots.isEmpty else { return }
        try connection.query(Self.finishStatement, Self.unnestParameters(slots) + [node])
    }

    /// ``finish(_:)``'s statement (a test reads its plan).
    static let finishStatement = """
        UPDATE keiji_claims SET finished = true
        WHERE ctid = ANY (ARRAY(SELECT (SELECT k.ctid FROM keiji_claims k
                                        WHERE k.task = d.t AND k.slot = d.s AND (k.node = $3) IS TRUE FOR UPDATE)
                                FROM unnest($1::text[], $2::bigint[]) AS d(t, s)))
          AND (node = $3) IS TRUE AND NOT finished
        """

    /// Takes over the unfinished claims of nodes that stopped cleanly or whose heartbeat is older than
    /// `afterSeconds` (the database's clock; nil: of stopped nodes only), in one statement: each claim moves to
    /// exactly one taker (a concurrent taker finds it no longer the dead node's). Claims older than
    /// `withinSeconds` are left: a slot that old is past any catch-up.
    public func takeOver(afterSeconds lease: Int?, withinSeconds window: Int = 3600) throws -> [TakenOverSlot] {
        try connection.query("""
            UPDATE keiji_claims c SET node = $1, taken_from = c.node, interruptions = c.interruptions + (CASE WHEN n.stopped THEN 0 ELSE 1 END),
                   claimed_at = now()
            FROM keiji_nodes n
            WHERE c.node = n.name AND n.name <> $1 AND NOT c.finished
              AND (n.stopped OR n.heartbeat_at < now() - make_interval(secs => $2::float8))
              AND c.claimed_at > now() - make_interval(secs => $3::float8)
            RETURNING c.task, c.slot, c.taken_from, n.stopped, c.interruptions
            """, [node, lease.map(String.init), String(window)]).compactMap { row in
            guard let task = row[0], let slot = row[1].flatMap({ Int64($0) }), let from = row[2],
                  let interruptions = row[4].flatMap({ Int($0) }) else { return nil }
            return TakenOverSlot(task: task, slot: slot, from: from, fromStoppedNode: row[3] == "t" && interruptions == 0,
                                interruptions: interruptions)
        }
    }

    /// This node's own unfinished claims of the last `withinSeconds`, for a restart to resolve against its journal:
    /// runs that ended (their finish mark was not yet sent), runs a crash interrupted, slots claimed and never
    /// begun (a crash before `run.started`, a stop before the spawn), and slots taken over and not yet run here.
    public func ownUnfinishedClaims(withinSeconds window: Int = 3600) throws -> [OwnClaim] {
        try connection.query("""
            SELECT task, slot, taken_from, interruptions FROM keiji_claims
            WHERE node = $1 AND NOT finished AND claimed_at > now() - make_interval(secs => $2::float8)
            ORDER BY task COLLATE "C", slot
            """, [node, String(window)]).compactMap { row in
            guard let task = row[0], let slot = row[1].flatMap({ Int64($0) }), let interruptions = row[3].flatMap({ Int($0) }) else { return nil }
            return OwnClaim(task: task, slot: slot, takenFrom: row[2], interruptions: interruptions)
        }
    }

    /// Which node holds each of `slots` now (slots nobody claimed are absent). Each slot is looked up by its
    /// primary key in a scalar subquery, which the planner cannot turn into a join: as a `LATERAL` join it did,
    /// and with a young table's statistics hashed the slots against a scan of every claim of every node (2.5 ms
    /// for 41 slots against 12,000 claims, and growing with the claims kept), as ``finish(_:)`` once did.
    public func holders(of slots: [ClaimedSlot]) throws -> [ClaimedSlot: String] {
        guard !slots.isEmpty else { return [:] }
        var holders: [ClaimedSlot: String] = [:]
        for row in try connection.query(Self.holdersStatement, Self.unnestParameters(slots)) {
            guard let task = row[0], let slot = row[1].flatMap({ Int64($0) }), let node = row[2] else { continue }
            holders[ClaimedSlot(task: task, slot: slot)] = node
        }
        return holders
    }

    /// The latest slot any node has claimed of each of `tasks` (tasks with no claim are absent). Each is one
    /// backward step of the `(task, slot)` primary key, in a scalar subquery as in ``holders(of:)``.
    public func lastClaimedSlots(of tasks: [String]) throws -> [String: Int64] {
        guard !tasks.isEmpty else { return [:] }
        var last: [String: Int64] = [:]
        for row in try connection.query(Self.lastClaimedStatement, [PostgresConnection.arrayLiteral(tasks.sorted())]) {
            guard let task = row[0], let slot = row[1].flatMap({ Int64($0) }) else { continue }
            last[task] = slot
        }
        return last
    }

    /// ``lastClaimedSlots(of:)``'s statement (a test reads its plan).
    static let lastClaimedStatement = """
        SELECT d.t, (SELECT max(k.slot) FROM keiji_claims k WHERE k.task = d.t)
        FROM unnest($1::text[]) AS d(t)
        """

    /// ``holders(of:)``'s statement (a test reads its plan); a slot nobody holds comes back with a NULL node.
    static let holdersStatement = """
        SELECT d.t, d.s, (SELECT k.node FROM keiji_claims k WHERE k.task = d.t AND k.slot = d.s)
        FROM unnest($1::text[], $2::bigint[]) AS d(t, s)
        """

    /// `slots` as the two arrays of `unnest($1::text[], $2::bigint[])`, in the order claims and finish marks lock
    /// claim rows: by task in byte order (as `COLLATE "C"` and Swift's `<` on task names, which are ASCII), then
    /// slot. Two nodes locking the same slots in different orders deadlocked. (A takeover locks a dead node's
    /// rows in its plan's order; only the dead node's own statements could meet it there.)
    static func unnestParameters(_ slots: some Sequence<ClaimedSlot>) -> [String?] {
        let slots = slots.sorted { ($0.task, $0.slot) < ($1.task, $1.slot) }
        return [PostgresConnection.arrayLiteral(slots.map(\.task)), PostgresConnection.arrayLiteral(slots.map { String($0.slot) })]
    }

    /// Deletes up to `limit` claims older than ``claimRetention`` of this node, and as many of each node silent
    /// for longer than that (gone for good), oldest first, found through the `(node, claimed_at)` index: a
    /// bounded table however long the cluster runs, in steps that never hold this node's claims up for long.
    /// One statement for all old rows scanned the whole table: at 1,000 slots a second, a week's 600 million
    /// rows to delete an hour's 3.6 million, while the node's claims waited behind it.
    /// - Returns: how many claims were deleted (fewer than `limit`: none older is left of this node).
    @discardableResult
    public func forgetOldClaims(limit: Int = 5_000) throws -> Int {
        let rows = try connection.query("""
            WITH gone AS (
                DELETE FROM keiji_claims WHERE ctid = ANY (ARRAY(
                    SELECT old.ctid FROM keiji_nodes n
                    CROSS JOIN LATERAL (SELECT c.ctid FROM keiji_claims c
                                        WHERE c.node = n.name AND c.claimed_at < now() - $2::interval
                                        ORDER BY c.claimed_at LIMIT $3) old
                    WHERE n.name = $1 OR n.heartbeat_at < now() - $2::interval))
                RETURNING 1)
            SELECT count(*) FROM gone
            """, [node, Self.claimRetention, String(limit)])
        return rows.first?.first.flatMap { $0 }.flatMap { Int($0) } ?? 0
    }

    /// Every node, by name: its last heartbeat and how many slots it claimed in the last minute.
    public static func nodes(on connection: PostgresConnection) throws -> [ClusterNode] {
        let present = try connection.query("SELECT to_regclass('keiji_nodes') IS NOT NULL AND to_regclass('keiji_claims') IS NOT NULL")
        guard present.first?.first == "t" else { return [] }
        return try connection.query("""
            SELECT n.name, n.host, n.pid, extract(epoch FROM now() - n.heartbeat_at)::float8, n.stopped,
                   (SELECT count(*) FROM keiji_claims c WHERE c.node = n.name AND c.claimed_at > now() - interval '1 minute')
            FROM keiji_nodes n ORDER BY n.name COLLATE "C"
            """).compactMap { row in
            guard let name = row[0], let host = row[1], let pid = row[2].flatMap({ Int32($0) }),
                  let age = row[3].flatMap({ Double($0) }), let claims = row[5].flatMap({ Int($0) }) else { return nil }
            return ClusterNode(name: name, host: host, pid: pid, heartbeatAgeSeconds: age, stopped: row[4] == "t", claimsLastMinute: claims)
        }
    }
}

extension JournalEntry.Event {
    /// A command every node of a cluster applies (published to `keiji_commands`): what defines a task and its
    /// state. A manual run (`--run`) is not: it runs once, on the node that took it.
    public var isClusterCommand: Bool {
        switch self {
        case .taskSaved, .taskEnabled, .taskDisabled, .taskDeleted, .taskResolved, .taskStopRequested, .taskErrored: true
        default: false
        }
    }
}

extension TaskDefinition {
    /// This definition with its paths in `workspace`: a command published by another node names that node's task
    /// folder (and binary); here the task runs in this node's own.
    public func localized(to workspace: Workspace) -> TaskDefinition {
        var local = self
        local.directory = workspace.taskDirectory(name)
        if case .binary = action { local.action = .binary(path: workspace.executable(for: name)) }
        return local
    }
}

/// What a scheduler tells the cluster of itself when it joins (``ClusterDatabase/join(pid:host:identity:)``).
public struct NodeIdentity: Sendable {
    /// Its `TIME_ZONE` setting.
    public var timeZone: String
    /// Its workspace's id (``Workspace/clusterNodeID()``).
    public var workspaceID: String
    /// Its journal's last LSN.
    public var journalLSN: UInt64

    public init(timeZone: String, workspaceID: String, journalLSN: UInt64) {
        (self.timeZone, self.workspaceID, self.journalLSN) = (timeZone, workspaceID, journalLSN)
    }
}

/// One (task, slot) a node holds.
public struct ClaimedSlot: Hashable, Sendable {
    public var task: String
    public var slot: Int64

    public init(task: String, slot: Int64) {
        self.task = task
        self.slot = slot
    }
}

/// What a claim statement answers: the slots this node holds among those it asked for.
public struct HeldSlots: Equatable, Sendable {
    /// Won by the statement, or won before and unfinished.
    public var all: Set<ClaimedSlot> = []
    /// Of ``all``, those this node took over from another (``ClusterDatabase/takeOver(afterSeconds:withinSeconds:)``).
    /// Their runs are the takeover's: a firing of the slot by this node's own timer, whose claim was on its way
    /// when the takeover was made, must not run it too.
    public var takenOver: Set<ClaimedSlot> = []

    public init(all: Set<ClaimedSlot> = [], takenOver: Set<ClaimedSlot> = []) {
        (self.all, self.takenOver) = (all, takenOver)
    }

    /// Only the slots among `asked`.
    public func intersection(_ asked: some Sequence<ClaimedSlot>) -> HeldSlots {
        HeldSlots(all: all.intersection(asked), takenOver: takenOver.intersection(asked))
    }
}

/// A claim ``ClusterDatabase/takeOver(afterSeconds:withinSeconds:)`` moved to this node.
public struct TakenOverSlot: Sendable, Equatable, Codable {
    public var task: String
    public var slot: Int64
    /// The node that held it.
    public var from: String
    /// That node stopped cleanly and no node that held the claim before died, so the slot's run never began (a
    /// stop ends every run it began); otherwise a holder died and its run may have been interrupted.
    public var fromStoppedNode: Bool
    /// Interruptions of this slot's runs by dead nodes so far, this one included.
    public var interruptions: Int

    public init(task: String, slot: Int64, from: String, fromStoppedNode: Bool, interruptions: Int) {
        (self.task, self.slot, self.from, self.fromStoppedNode, self.interruptions) = (task, slot, from, fromStoppedNode, interruptions)
    }
}

/// One of this node's unfinished claims (``ClusterDatabase/ownUnfinishedClaims(withinSeconds:)``).
public struct OwnClaim: Sendable, Equatable {
    public var task: String
    public var slot: Int64
    /// The node this one took the claim over from (nil: claimed here when its slot came due).
    public var takenFrom: String?
    /// Interruptions of this slot's runs by dead nodes so far.
    public var interruptions: Int

    public init(task: String, slot: Int64, takenFrom: String? = nil, interruptions: Int = 0) {
        (self.task, self.slot, self.takenFrom, self.interruptions) = (task, slot, takenFrom, interruptions)
    }
}

/// A node as `keiji system --status` shows it.
public struct ClusterNode: Sendable, Equatable {
    public var name: String
    public var host: String
    public var pid: Int32
    /// Seconds since its last heartbeat, on the database's clock.
    public var heartbeatAgeSeconds: Double
    /// Stopped cleanly (`keiji system --stop`).
    public var stopped: Bool
    /// Slots it claimed (and so ran or is running) in the last minute.
    public var claimsLastMinute: Int

    /// Alive: not stopped, and a heartbeat within ``ClusterDatabase/heartbeatTimeoutSeconds``.
    public var isAlive: Bool { !stopped && heartbeatAgeSeconds < Double(ClusterDatabase.heartbeatTimeoutSeconds) }
}
