import Foundation
import Testing

@testable import KeijiCore

/// ``SQLiteDatabase/Statement/run(_:)`` binds its texts from one buffer it keeps between rows, without SQLite
/// copying them: every value must arrive whole, whatever the lengths and order of the rows before it.
struct SQLiteStatementTests {
    @Test func rowsWrittenOneAfterAnotherKeepEveryValue() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let database = try SQLiteDatabase(path: home.path + "/values.db")
        try database.execute("CREATE TABLE t (n INTEGER, a TEXT, b TEXT, c INTEGER, d TEXT)")
        let long = String(repeating: "0123456789", count: 40)
        let rows: [[DatabaseValue]] = [
            [.integer(1), .text(long), .text("é🙂 ünïcode"), .integer(-7), .null],
            [.integer(2), .text(""), .null, .integer(Int64.max), .text("short")],  // shorter than the row before
            [.integer(3), .null, .text(""), .null, .text("")],
            [.integer(4), .text("a"), .text(long + "!"), .integer(0), .text("b\nc")],  // longer again
        ]
        let insert = try database.prepare("INSERT INTO t (n, a, b, c, d) VALUES (?, ?, ?, ?, ?)")
        for row in rows { try insert.run(row) }
        // Each value as SQLite stored it: its type, then its text, so an empty text is not a NULL.
        let stored = try database.rows("SELECT typeof(a), a, typeof(b), b, typeof(c), c, typeof(d), d FROM t ORDER BY n")
        let expected: [[String?]] = rows.map { row in
            row.dropFirst().flatMap { value -> [String?] in
                switch value {
                case .null: ["null", nil]
                case .integer(let n): ["integer", String(n)]
                case .text(let text): ["text", text]
                }
            }
        }
        #expect(stored == expected)
    }
}
