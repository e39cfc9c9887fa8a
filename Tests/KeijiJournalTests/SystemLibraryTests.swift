import CSQLite
import Testing

/// The design card names libsqlite3 for the query view; this proves the system library links and is usable
/// (scripts/test installs libsqlite3-dev on a fresh machine).
struct SystemLibraryTests {
    @Test func sqliteLinksAndRunsAQuery() throws {
        #expect(String(cString: sqlite3_libversion()).hasPrefix("3."))
        var db: OpaquePointer?
        #expect(sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK)
        defer { sqlite3_close(db) }
        var statement: OpaquePointer?
        #expect(sqlite3_prepare_v2(db, "select 6 * 7", -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_step(statement) == SQLITE_ROW)
        #expect(sqlite3_column_int(statement, 0) == 42)
    }
}
