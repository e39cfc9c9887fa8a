import Foundation
import KeijiJournal
import Testing

/// `keiji journal dump --json` is JSON Lines a script can parse and compare: the same journal dumped twice gave other
/// bytes (a binary record re-encoded came out in another key order at each call), and a record that does not decode
/// was a plain-text line in the stream.
struct JournalDumpTests {
    typealias Session = WalkthroughTests.Session

    @Test func dumpJSONIsSortedStableAndOneJSONValuePerLine() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for name in ["a", "b", "c"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "echo \(name)", "--every", "1h", "--retries", "2").status == 0)
        }
        // A binary record of a version this keiji does not know: it does not decode.
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: s.home + "/.keiji/journal", options: options)
        let newer: [UInt8] = [2, 0xCA, 0xFE]
        let lsn = try await journal.append(contentsOf: [newer]).upperBound
        try await journal.close()

        var dumps: [String] = []
        for _ in 1...4 {
            let r = try await s.keiji("journal", "dump", "--json")
            #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stdout)\(r.stderr)")
            dumps.append(r.stdout)
        }
        #expect(Set(dumps).count == 1, "the same bytes at each call:\n\(dumps.joined(separator: "\n---\n"))")
        let lines = dumps[0].split(separator: "\n")
        #expect(lines.count >= 4, "\(dumps[0])")
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            let sorted = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            #expect(String(decoding: sorted, as: UTF8.self) == String(line), "keys sorted: \(line)")
        }
        #expect(lines.last == #"{"lsn":\#(lsn),"record":{"undecodable":"02cafe"}}"#, "\(dumps[0])")
        // The text form still names it.
        #expect(try await s.keiji("journal", "dump").stdout.hasSuffix("\(lsn)  (undecodable record, 3 bytes)\n"))
    }
}
