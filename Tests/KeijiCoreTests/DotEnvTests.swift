import Foundation
import Testing
@testable import KeijiCore

/// The `.env` codec: what `keiji task --create` writes, the scheduler reads back exactly, and so does a shell.
struct DotEnvTests {
    static let awkward = [
        "it's fine", "say \"hi\"", "back\\slash", "a\\nb literally", "$HOME and ${PATH} and $(id) and `id`",
        "two\nlines", "trailing newline\n", "\r\ncrlf", "  padded  ", "# not a comment", "x=y", "'\"'\"'",
        "unicode: é e\u{301} 日本語 🎌", "\"", "'", "\\", "", "tab\there", "ends with backslash\\",
    ]

    @Test(arguments: awkward)
    func everyValueRoundTrips(_ value: String) throws {
        let text = try DotEnv.encode([("TASK_NAME", "t"), ("TASK_DESCRIPTION", value), ("AFTER", "still here")])
        let decoded = DotEnv.parse(text).values
        #expect(decoded["TASK_DESCRIPTION"] == value, "\(text)")
        #expect(decoded["TASK_NAME"] == "t" && decoded["AFTER"] == "still here", "the value does not swallow its neighbours")
        #expect(DotEnv.parse(text).problems.isEmpty, "\(text)")
    }

    /// The file is shell syntax: `. ./.env` in /bin/sh gives exactly the value keiji reads (nothing expanded).
    @Test func aShellReadsTheSameValues() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        for (index, value) in Self.awkward.enumerated() where !value.hasSuffix("\n") {  // $(…) strips trailing newlines
            let path = home.path + "/\(index).env"
            try DotEnv.encode([("V", value)]).write(toFile: path, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", ". \"$1\" && printf %s \"$V\"", "sh", path]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(printed == value, "\(value.debugDescription) via sh")
        }
    }

    @Test func handWrittenFilesAndOlderKeijiFilesRead() {
        let text = """
            # a comment
            export PLAIN=value # trailing comment
            OLD='it'\\''s fine'
            SINGLE='no \\escapes $here'
            DOUBLE="tab\\t stays \\$HOME"
            SPACED = spaced
            CRLF=value\r
            not an assignment
            EMPTY=
            LATER=one
            LATER=two
            """
        let values = DotEnv.parse(text).values
        #expect(values["PLAIN"] == "value")
        #expect(values["OLD"] == "it's fine", "what keiji wrote before reads as what was meant")
        #expect(values["SINGLE"] == "no \\escapes $here")
        #expect(values["DOUBLE"] == "tab\\t stays $HOME")
        #expect(values["SPACED"] == "spaced")
        #expect(values["CRLF"] == "value")
        #expect(values["EMPTY"] == "")
        #expect(values["LATER"] == "two")
        #expect(values.count == 8)
        #expect(DotEnv.parse(text).problems == [DotEnv.Problem(line: 8, reason: "not KEY=value: skipped")])
    }

    /// Lines that set nothing, or not all they seem to, are reported by line and read past; an unclosed quote ends
    /// with its line (it took in every line after it, without a word).
    @Test func mistakesAreReportedAndReadPast() {
        let text = """
            API_KEY="oops
            NEXT=still
            BROKEN LINE WITHOUT EQUALS
            MY-KEY=x
            NAME=John Smith # the comment is fine, Smith is not
            LAST='also open\r
            AFTER=1
            """
        let (values, problems) = DotEnv.parse(text)
        #expect(values == ["API_KEY": "oops", "NEXT": "still", "NAME": "John", "LAST": "also open", "AFTER": "1"])
        #expect(problems.map(\.description) == [
            "line 1: a quote is not closed: the value ends with the line",
            "line 3: not KEY=value: skipped",
            "line 4: the name before '=' is not a variable name (letters, digits and '_', not starting with a digit): skipped",
            "line 5: text after the value is not part of it (quote a value with spaces): ignored",
            "line 6: a quote is not closed: the value ends with the line",
        ])
        #expect(DotEnv.parse(text).values == values)
    }

    /// A file's bytes: a UTF-8 byte order mark is skipped (it made the first name unreadable); a value with a NUL or with
    /// bytes that are not UTF-8 is skipped and named (the NUL dropped it, the bytes became U+FFFD, without a word), while
    /// a U+FFFD written as UTF-8 is text like any other.
    @Test func aFilesBytesAreReadAsTheShellWouldOrNamed() {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let withBOM = DotEnv.parse(bytes: bom + Array("T_BOM=1\nNEXT=2\n".utf8))
        #expect(withBOM.values == ["T_BOM": "1", "NEXT": "2"] && withBOM.problems.isEmpty)
        let bytes = Array("OK=caf\u{E9}\nT_LATIN1=caf".utf8) + [0xE9] + Array("\nT_NUL=a".utf8) + [0] + Array("b\nREPLACED=\u{FFFD}\nAFTER='x\ny'\n".utf8)
        let (values, problems) = DotEnv.parse(bytes: bytes)
        #expect(values == ["OK": "caf\u{E9}", "REPLACED": "\u{FFFD}", "AFTER": "x\ny"])
        #expect(problems.map(\.description) == [
            "line 2: the value of T_LATIN1 holds bytes that are not UTF-8: skipped",
            "line 3: the value of T_NUL holds a NUL byte, which no environment can: skipped",
        ])
    }

    @Test func badKeysAreRefused() {
        #expect(throws: KeijiError.self) { try DotEnv.encode([("1BAD", "x")]) }
        #expect(throws: KeijiError.self) { try DotEnv.encode([("A B", "x")]) }
        #expect(throws: KeijiError.self) { try DotEnv.encode([("OK", "nul\0")]) }
    }
}
