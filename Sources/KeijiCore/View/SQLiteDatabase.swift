import CSQLite
import Foundation

/// A thin wrapper over one libsqlite3 connection: enough for the query view, with errors that name the
/// statement and SQLite's message. Not thread-safe: one owner at a time.
public final class SQLiteDatabase {
    private var handle: OpaquePointer?
    public let path: String

    public init(path: String, readOnly: Bool = false) throws {
        _ = Self.configured
        self.path = path
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let code = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(code)"
            sqlite3_close(handle)
            handle = nil  // deinit runs for an initializer that throws here, and must not close it again
            throw KeijiError(.database, "cannot open \(path): \(message)")
        }
        sqlite3_busy_timeout(handle, 5000)
        if !readOnly { Self.makePrivate(path) }
    }

    deinit { sqlite3_close(handle) }

    /// Mode 0600 for the file at `path`, but never through a link: `chmod` by path changed the mode of whatever
    /// `keiji.db` pointed to. (Not `fchmod` on a descriptor of its own: closing it would drop SQLite's POSIX locks.)
    private static func makePrivate(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return }
        chmod(path, 0o600)
    }

    /// Process-wide settings, made once before the first connection initializes SQLite. Memory statistics
    /// (which keiji never reads) cost a mutex on every allocation: at 10,000 runs a second, each run's row
    /// written into the view makes dozens.
    private static let configured: Void = { _ = csqlite_disable_memory_statistics() }()

    public func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw failure("\(message) in: \(sql.prefix(80))")
        }
    }

    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Leaves the WAL to later checkpoints when this connection closes (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`).
    public func leaveWALAtClose() throws {
        guard csqlite_no_checkpoint_on_close(handle) == SQLITE_OK else { throw failure("cannot set no_ckpt_on_close") }
    }

    /// Frees the pages this connection caches that are not in use (`sqlite3_db_release_memory`).
    public func releaseCachedPages() { sqlite3_db_release_memory(handle) }

    /// Rows the last INSERT, UPDATE or DELETE changed.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    public func prepare(_ sql: String) throws -> Statement {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw failure("\(errorMessage) in: \(sql.prefix(80))")
        }
        return Statement(statement, database: self)
    }

    /// Runs a query and returns every row as strings (NULL as nil): for reads that are not on a hot path.
    public func rows(_ sql: String, _ arguments: [DatabaseValue] = []) throws -> [[String?]] {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        var rows: [[String?]] = []
        while try statement.step() {
            rows.append((0..<statement.columnCount).map { statement.string(at: $0) })
        }
        return rows
    }

    var errorMessage: String { String(cString: sqlite3_errmsg(handle)) }

    /// The error of the call that just failed, naming the file: coded ``KeijiError/Code-swift.struct/databaseDamaged``
    /// when SQLite found the file damaged, so that a caller can set a derived database aside and rebuild it.
    func failure(_ what: String) -> KeijiError {
        let primary = sqlite3_errcode(handle) & 0xFF
        let code: KeijiError.Code = primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ? .databaseDamaged : .database
        return KeijiError(code, "\(path): \(what)")
    }

    public final class Statement {
        private let statement: OpaquePointer
        private let database: SQLiteDatabase
        /// ``run(_:)``'s texts, NUL-terminated one after another; kept, with its capacity, between rows.
        private var texts: [UInt8] = []

        init(_ statement: OpaquePointer, database: SQLiteDatabase) {
            self.statement = statement
            self.database = database
        }

        deinit { sqlite3_finalize(statement) }

        public func bind(_ values: [DatabaseValue]) throws {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            try bind(values) { position, text in sqlite3_bind_text(statement, position, text, -1, csqlite_transient()) }
        }

        /// Binds each value at its place, the texts through `bindText` (the place, the text), in order.
        private func bind(_ values: [DatabaseValue], text bindText: (Int32, String) -> Int32) throws {
            for (index, value) in values.enumerated() {
                let position = Int32(index + 1)
                let code: Int32 = switch value {
                case .null: sqlite3_bind_null(statement, position)
                case .integer(let n): sqlite3_bind_int64(statement, position, n)
                case .text(let text): bindText(position, text)
                }
                guard code == SQLITE_OK else { throw KeijiError(.database, "bind: \(database.errorMessage)") }
            }
        }

        /// Runs the statement once more; true while it returns rows.
        @discardableResult
        public func step() throws -> Bool {
            switch sqlite3_step(statement) {
            case SQLITE_ROW: return true
            case SQLITE_DONE: return false
            default: throw database.failure(database.errorMessage)
            }
        }

        /// Binds `values` and runs the statement once: the view's writes, thousands of rows a flush. The texts are
        /// bound from one buffer the statement keeps (`SQLITE_STATIC`), where ``bind(_:)`` has SQLite allocate a
        /// copy of each; the buffer is not touched until the bindings are cleared, after the step.
        public func run(_ values: [DatabaseValue]) throws {
            texts.removeAll(keepingCapacity: true)
            for case .text(let text) in values {
                texts.append(contentsOf: text.utf8)
                texts.append(0)
            }
            try texts.withUnsafeBufferPointer { buffer in
                sqlite3_reset(statement)
                defer { sqlite3_clear_bindings(statement) }
                var offset = 0
                try bind(values) { position, text in
                    let count = text.utf8.count
                    let start = UnsafeRawPointer(buffer.baseAddress! + offset).assumingMemoryBound(to: CChar.self)
                    offset += count + 1
                    return sqlite3_bind_text(statement, position, start, Int32(count), nil)  // nil: SQLITE_STATIC
                }
                try step()
            }
        }

        public var columnCount: Int { Int(sqlite3_column_count(statement)) }

        public func string(at column: Int) -> String? {
            guard let text = sqlite3_column_text(statement, Int32(column)) else { return nil }
            return String(cString: text)
        }

        public func integer(at column: Int) -> Int64 { sqlite3_column_int64(statement, Int32(column)) }
    }
}
