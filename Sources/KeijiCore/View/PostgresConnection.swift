import CLibPQ
import Foundation
import Synchronization

/// One libpq connection to PostgreSQL: enough for the query view (and, later, a cluster's claims), with errors
/// of one line that name the database and never show its password. Blocking: every call waits for the server,
/// so the scheduler makes them on the view writer's own thread, never on Swift's cooperative pool. Not
/// thread-safe: one owner at a time.
public final class PostgresConnection {
    private let connection: OpaquePointer
    /// How messages name the database (the URL with its password masked, or what the caller chose).
    public let name: String
    /// Strings never to show: the password, as written and percent-decoded.
    private let secrets: [String]
    /// Round trips made so far (each ``query(_:_:)`` and ``execute(_:)``; not a statement's one-time preparation):
    /// what batching saves is counted here.
    public private(set) var roundTrips = 0
    /// The ``roundTrips`` of every connection of this process: the scheduler's `keiji_database_statements_total`,
    /// what shows a node's claims batched per tick (``counted()``).
    public static let statementsInProcess = Atomic<Int>(0)
    /// The session's prepared statements, by their text. keiji sends a few dozen statements over and over: parsed,
    /// analysed and planned at every call, that was about a quarter of the server's CPU under a three-node cluster's
    /// claims and flushes. A statement is prepared at its second use, so a short session (a CLI command, which sends
    /// most statements once) pays no extra round trip. A new session has none (the server drops them with the old one).
    private var prepared: [String: String] = [:]
    /// Texts sent once in this session, not prepared yet.
    private var sentOnce: Set<String> = []
    /// More distinct texts than keiji's own statements (text built with values in it would grow them without end):
    /// past it, a statement is sent whole each time.
    static let preparedLimit = 128
    /// Sessions re-established after the server dropped one (a restart, `pg_terminate_backend`): a new session
    /// may find the server lost what an earlier one committed without waiting for the WAL flush.
    public private(set) var reconnections = 0
    /// Inside ``transaction(_:)``: a statement that fails because the connection broke is not retried there
    /// (the transaction died with the connection; the caller retries it whole).
    private var inTransaction = false
    /// The SQLSTATE of the last statement that failed on the server (nil when it failed otherwise).
    private var lastSQLState: String?
    /// Deadlock detected, serialization failure: the server rolled the statement back and running it again is the
    /// documented answer (each of keiji's statements outside a transaction may run twice, see ``query(_:_:)``).
    private static let retryableStates: Set<String> = ["40P01", "40001"]

    /// Connects to `url` (`postgres://` or `postgresql://`, with libpq's parameters in the query), giving up
    /// after `connectTimeout` seconds (the URL's own `connect_timeout` wins).
    /// - Parameter name: how errors name the database; the URL with its password masked when nil.
    /// - Throws: ``KeijiError`` `.database`, one line: "<name>: cannot connect: <libpq's reason>".
    /// - Parameter options: server settings for the session (libpq's `options`, e.g. `-c synchronous_commit=on`);
    ///   kept across reconnections.
    public init(url: URL, connectTimeout: Int = 5, name: String? = nil, options: String? = nil) throws {
        let name = name ?? Settings.Database.redacted(url)
        if let failure = keiji_pq_load() {
            throw KeijiError(.database, "\(name): cannot connect: libpq could not be loaded (\(String(cString: failure))); install libpq5")
        }
        let secrets = Settings.Database.passwords(in: url)
        // Processed in order, and `dbname` expands the URL: its own parameters override the ones before it.
        let keywords = ["connect_timeout", "application_name", "client_encoding"] + (options == nil ? [] : ["options"]) + ["dbname"]
        let values = [String(connectTimeout), "keiji", "UTF8"] + (options.map { [$0] } ?? []) + [url.absoluteString]
        let cKeywords = keywords.map { strdup($0) }
        let cValues = values.map { strdup($0) }
        defer { (cKeywords + cValues).forEach { free($0) } }
        let made = (cKeywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { keys in
            (cValues.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { vals in
                keiji_PQconnectdbParams(keys.baseAddress, vals.baseAddress, 1)
            }
        }
        guard let made else { throw KeijiError(.database, "\(name): cannot connect: libpq is out of memory") }
        guard keiji_PQstatus(made) == keiji_CONNECTION_OK else {
            let reason = Self.oneLine(String(cString: keiji_PQerrorMessage(made)))
            keiji_PQfinish(made)
            throw KeijiError(.database, "\(name): cannot connect: \(Self.redact(reason, secrets))")
        }
        // libpq prints NOTICEs (`relation … already exists, skipping`) on stderr by default; keiji's output is its own.
        keiji_PQsetNoticeProcessor(made, { _, _ in }, nil)
        connection = made
        self.name = name
        self.secrets = secrets
    }

    deinit { keiji_PQfinish(connection) }

    /// Runs one statement with text parameters (`$1`, `$2`, …; nil is NULL) and returns its rows, each value
    /// as text (NULL as nil). A connection the server dropped (a restart, `pg_terminate_backend`, a network cut)
    /// is re-established and, outside a transaction, the statement tried once more: every statement keiji makes
    /// outside one may run twice (a claim returns the slots this node already holds; a command published twice
    /// is applied twice, which changes nothing).
    /// A statement the server chose as a deadlock's victim is run again too (up to three times in all).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> [[String?]] {
        var attempts = 0
        while true {
            attempts += 1
            do {
                return try queryOnce(sql, parameters)
            } catch where !inTransaction && keiji_PQstatus(connection) == keiji_CONNECTION_BAD && attempts == 1 {
                continue
            } catch where !inTransaction && lastSQLState.map(Self.retryableStates.contains) == true && attempts < 3 {
                continue
            }
        }
    }

    private func queryOnce(_ sql: String, _ parameters: [String?]) throws -> [[String?]] {
        lastSQLState = nil
        try reconnectIfBroken()
        let statement = try preparedStatement(sql, parameterCount: parameters.count)
        counted()
        let cValues = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { cValues.forEach { free($0) } }
        let result = cValues.map { UnsafePointer($0) }.withUnsafeBufferPointer { values in
            if let statement {
                keiji_PQexecPreparedText(connection, statement, Int32(parameters.count), values.baseAddress)
            } else {
                keiji_PQexecText(connection, sql, Int32(parameters.count), values.baseAddress)
            }
        }
        return try rows(of: result, sql: sql)
    }

    /// The session's name for `sql`, prepared at its second use (one round trip more, once); nil at its first
    /// use and past ``preparedLimit``.
    private func preparedStatement(_ sql: String, parameterCount: Int) throws -> String? {
        if let name = prepared[sql] { return name }
        guard prepared.count < Self.preparedLimit else { return nil }
        guard sentOnce.remove(sql) != nil else {
            if sentOnce.count < Self.preparedLimit { sentOnce.insert(sql) }
            return nil
        }
        let name = "keiji_\(prepared.count + 1)"
        try rows(of: keiji_PQprepareText(connection, name, sql, Int32(parameterCount)), sql: sql)
        prepared[sql] = name
        return name
    }

    /// Runs statements without parameters (several, separated by `;`, in one round trip).
    public func execute(_ sql: String) throws {
        do {
            try executeOnce(sql)
        } catch where !inTransaction && keiji_PQstatus(connection) == keiji_CONNECTION_BAD {
            try executeOnce(sql)
        }
    }

    private func executeOnce(_ sql: String) throws {
        try reconnectIfBroken()
        counted()
        try rows(of: keiji_PQexec(connection, sql), sql: sql)
    }

    /// One more statement sent, on this connection and in the process.
    private func counted() {
        roundTrips += 1
        Self.statementsInProcess.add(1, ordering: .relaxed)
    }

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        inTransaction = true
        defer { inTransaction = false }
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// A `text[]` (or any array type's) literal for a text parameter: `{"a","b",NULL}`, quoted and escaped as
    /// PostgreSQL's array input reads it. One parameter carries a whole column of a multi-row statement.
    public static func arrayLiteral(_ values: [String?]) -> String {
        var literal = "{"
        for (index, value) in values.enumerated() {
            if index > 0 { literal += "," }
            guard let value else {
                literal += "NULL"
                continue
            }
            literal += "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { literal += "\\" }
                literal.unicodeScalars.append(character)
            }
            literal += "\""
        }
        return literal + "}"
    }

    private func reconnectIfBroken() throws {
        guard keiji_PQstatus(connection) == keiji_CONNECTION_BAD else { return }
        (prepared, sentOnce) = ([:], [])
        keiji_PQreset(connection)
        guard keiji_PQstatus(connection) == keiji_CONNECTION_OK else {
            throw KeijiError(.database, "\(name): cannot reconnect: \(Self.redact(Self.oneLine(String(cString: keiji_PQerrorMessage(connection))), secrets))")
        }
        reconnections += 1
    }

    @discardableResult
    private func rows(of result: OpaquePointer?, sql: String) throws -> [[String?]] {
        defer { keiji_PQclear(result) }
        let status = keiji_PQresultStatus(result)
        guard status == keiji_PGRES_TUPLES_OK || status == keiji_PGRES_COMMAND_OK else {
            // The primary message alone ("permission denied for schema public"): the full one adds the statement
            // with a caret under the fault, on lines of their own.
            let primary = result.flatMap { keiji_PQresultErrorField($0, keiji_PG_DIAG_MESSAGE_PRIMARY) }.map { String(cString: $0) }
            lastSQLState = result.flatMap { keiji_PQresultErrorField($0, keiji_PG_DIAG_SQLSTATE) }.map { String(cString: $0) }
            let reason = Self.oneLine(primary ?? String(cString: keiji_PQerrorMessage(connection)))
            let statement = Self.oneLine(String(sql.prefix(60)))
            throw KeijiError(.database, "\(name): \(Self.redact(reason, secrets)) (in: \(statement)…)")
        }
        let count = Int(keiji_PQntuples(result))
        let columns = Int(keiji_PQnfields(result))
        var rows: [[String?]] = []
        rows.reserveCapacity(count)
        for row in 0..<count {
            rows.append((0..<columns).map { column in
                keiji_PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: keiji_PQgetvalue(result, Int32(row), Int32(column)))
            })
        }
        return rows
    }

    /// libpq's messages span lines ("…failed: Connection refused\n\tIs the server running…"); keiji prints one.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// `text` with each of `secrets` masked. A short secret is masked only where it stands as a word of its own (not
    /// between letters or digits): replaced everywhere, a password `p` made "connection to server at …, port 5999
    /// failed" read "***ort 5999", garbling the message and telling which letters the password has.
    static func redact(_ text: String, _ secrets: [String]) -> String {
        secrets.sorted { $0.count > $1.count }.reduce(text) { text, secret in
            guard !secret.isEmpty else { return text }
            if secret.count >= wordlessSecretLength { return text.replacingOccurrences(of: secret, with: "***") }
            var masked = "", rest = text[...]
            while let found = rest.range(of: secret) {
                let before = found.lowerBound > rest.startIndex ? rest[rest.index(before: found.lowerBound)] : nil
                let after = found.upperBound < rest.endIndex ? rest[found.upperBound] : nil
                let alone = !(before.map(isWordCharacter) ?? false) && !(after.map(isWordCharacter) ?? false)
                masked += rest[..<found.lowerBound] + (alone ? "***" : rest[found])
                rest = rest[found.upperBound...]
            }
            return masked + rest
        }
    }

    /// From this length a secret is masked wherever it appears: by chance inside another word it is too unlikely.
    static let wordlessSecretLength = 8

    private static func isWordCharacter(_ character: Character) -> Bool { character.isLetter || character.isNumber }
}
