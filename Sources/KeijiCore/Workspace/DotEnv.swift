import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A task's `.env`: the one codec for the file `keiji task --create` writes and the scheduler reads at each
/// run, so any text (quotes, newlines, backslashes, `$`, unicode) reads back exactly as it was written.
///
/// The format is POSIX shell's: `KEY=value` lines, `#` comments, an optional `export ` prefix. A value is a
/// shell word, never expanded: `'…'` is literal, in `"…"` a backslash escapes only `$`, `` ` ``, `"`, `\`
/// and a newline (a line continuation), and outside quotes a backslash escapes the next character. Quoted
/// parts join, so `'it'\''s'` (what older keiji versions wrote) reads as `it's`, and a quoted value may span
/// lines. The writer double-quotes every value and escapes what a shell would expand, so `. ./.env` in a
/// shell gives exactly the same values.
public enum DotEnv {
    /// The lines for `pairs`, in order. Keys must be shell variable names.
    public static func encode(_ pairs: [(key: String, value: String)]) throws -> String {
        var text = ""
        for (key, value) in pairs {
            guard isValidKey(key) else { throw KeijiError(.invalidSetting, "invalid .env key \"\(key)\": use letters, digits and '_', not starting with a digit") }
            guard !value.unicodeScalars.contains("\0") else { throw KeijiError(.invalidSetting, ".env value of \(key) contains a NUL character") }
            text += key + "=" + quoted(value) + "\n"
        }
        return text
    }

    /// A line that sets nothing, or not all it seems to (``parse(_:)``): the scheduler names it in the task's log.
    public struct Problem: Equatable, Sendable, CustomStringConvertible {
        /// From 1.
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// Every `KEY=value` in `text` (a later line for the same key wins, as in a shell), and the lines it read past: one that is not `KEY=value`, a key that is not a variable
    /// name, a quote never closed (its value ends with its line; it took in the rest of the file), text after a value.
    /// Read scalar by scalar, so a quote followed by a combining mark, or a CRLF line end, is never merged into one
    /// character.
    public static func parse(_ text: String) -> (values: [String: String], problems: [Problem]) {
        parse(text, notUTF8: [])
    }

    /// ``parse(_:)`` of a file's bytes. A UTF-8 byte order mark at the start is skipped (Windows editors write one; it
    /// made the first name unreadable). A value with bytes that are not UTF-8 is skipped and named: decoded, they became
    /// U+FFFD without a word (a Latin-1 password, silently wrong).
    public static func parse(bytes: [UInt8]) -> (values: [String: String], problems: [Problem]) {
        var iterator = (bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? bytes.dropFirst(3) : bytes[...]).makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var text = ""
        var notUTF8: [Int] = []
        decoding: while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded): text.unicodeScalars.append(Unicode.UTF8.decode(encoded))
            case .error:
                notUTF8.append(text.utf8.count)
                text.unicodeScalars.append("\u{FFFD}")
            case .emptyInput: break decoding
            }
        }
        return parse(text, notUTF8: notUTF8)
    }

    /// `notUTF8`: the UTF-8 offsets in `text`, in order, of the U+FFFD that stand for bytes that were not UTF-8.
    private static func parse(_ text: String, notUTF8: [Int]) -> (values: [String: String], problems: [Problem]) {
        var values: [String: String] = [:]
        var problems: [Problem] = []
        let all = text.unicodeScalars[...]
        var rest = all
        // Problems come in the text's order, so their lines are counted on from the last one.
        var counted = (index: all.startIndex, line: 1)
        func report(_ reason: String, at position: Substring.UnicodeScalarView.Index) {
            counted = (position, counted.line + all[counted.index..<position].count { $0 == "\n" })
            problems.append(Problem(line: counted.line, reason: reason))
        }
        func isBlank(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\r" }
        var nextNotUTF8 = 0
        while !rest.isEmpty {
            rest = rest.drop { isBlank($0) || $0 == "\n" }
            if rest.first == "#" {
                rest = rest.drop { $0 != "\n" }
                continue
            }
            let start = rest.startIndex
            if rest.starts(with: "export ".unicodeScalars) { rest = rest.dropFirst(7).drop(while: isBlank) }
            let key = rest.prefix { $0 != "=" && $0 != "\n" }
            rest = rest.dropFirst(key.count)
            guard rest.first == "=" else {
                if start != rest.endIndex { report("not KEY=value: skipped", at: start) }
                continue
            }
            rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" }
            let valueStart = text.utf8.distance(from: text.startIndex, to: rest.startIndex)
            let (value, unclosedQuote) = readValue(&rest)
            let valueEnd = text.utf8.distance(from: text.startIndex, to: rest.startIndex)
            while nextNotUTF8 < notUTF8.count, notUTF8[nextNotUTF8] < valueStart { nextNotUTF8 += 1 }
            let name = String(key).trimmingSpaces()
            if !isValidKey(name) {
                report("the name before '=' is not a variable name (letters, digits and '_', not starting with a digit): skipped", at: start)
            } else if value.unicodeScalars.contains("\0") {
                // No environment can hold one: it was dropped without a word.
                report("the value of \(name) holds a NUL byte, which no environment can: skipped", at: start)
            } else if nextNotUTF8 < notUTF8.count, notUTF8[nextNotUTF8] < valueEnd {
                report("the value of \(name) holds bytes that are not UTF-8: skipped", at: start)
            } else {
                values[name] = value
            }
            if let unclosedQuote { report("a quote is not closed: the value ends with the line", at: unclosedQuote) }
            // Anything after the value ends at the line's end: a comment, or words a shell would run as a command.
            let after = rest.prefix { $0 != "\n" }
            if let word = after.firstIndex(where: { !isBlank($0) }), after[word] != "#" {
                report("text after the value is not part of it (quote a value with spaces): ignored", at: word)
            }
            rest = rest.dropFirst(after.count)
        }
        return (values, problems)
    }

    /// The values in the file at `path`, or none if there is no file; one that is there but cannot be read is an error
    /// (``read(_:)``), as the scheduler refuses it: read as empty, `--build` took an empty description.
    public static func load(_ path: String) throws -> [String: String] {
        guard let bytes = try read(path) else { return [:] }
        return parse(bytes: bytes).values
    }

    /// The most of a `.env` that is read, comments and all, by a run and by `--build` alike: a bound on the read and
    /// the parse (on the scheduler's one engine, a 66 MB file held every task for 10 s), not on what a run takes: at
    /// that limit, a file of comments with little in it could never start.
    public static let fileLimit = 1 << 20

    /// The `.env`'s bytes, or nil when there is no file; the scheduler and the CLI read it alike, as a ``RegularFile``
    /// (a link is followed). Gone is told by the open itself, not by a check before it: a `.env` replaced by
    /// delete-then-create (`rm` and a new file, as some editors and deploy scripts do) failed between the two, and that
    /// put the task in error. One that is there but cannot be read (no permission, a directory, a FIFO, a device) is an
    /// error: read as empty, a run went ahead without its variables (credentials, say) and nothing said so. One over
    /// ``fileLimit`` is refused, read no further.
    public static func read(_ path: String) throws -> [UInt8]? {
        switch RegularFile.read(path, limit: fileLimit + 1, followLinks: true) {
        case .success(let bytes) where bytes.count > fileLimit:
            // A file that grew past the bound as it was read has no size to give.
            let size = FileSystem.size(of: path).flatMap { $0 > fileLimit ? "is \($0) bytes" : nil } ?? "holds more than \(fileLimit) bytes"
            throw KeijiError(.io, "\(path) \(size); a .env may be at most \(fileLimit)")
        case .success(let bytes):
            return bytes
        case .failure(.absent):
            return nil
        case .failure(.notRegular(let mode)) where mode & S_IFMT == S_IFDIR:
            throw KeijiError(.io, "cannot read \(path): \(String(cString: strerror(EISDIR)))")  // as it was said before
        case .failure(let failure):
            throw KeijiError(.io, "cannot read \(path): \(failure)")
        }
    }

    static func isValidKey<S: StringProtocol>(_ key: S) -> Bool {
        guard let first = key.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return key.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    static func quoted(_ value: String) -> String {
        var out = "\""
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "$": out += "\\$"
            case "`": out += "\\`"
            default: out.unicodeScalars.append(character)
            }
        }
        return out + "\""
    }

    /// Reads one shell word from `rest`, up to an unquoted blank or newline. A quote the rest of the text never
    /// closes ends with its line instead, so the lines after it are read as lines; its position is returned.
    private static func readValue(_ scalars: inout Substring.UnicodeScalarView) -> (String, unclosedQuote: Substring.UnicodeScalarView.Index?) {
        var value = ""
        while let c = scalars.first {
            switch c {
            case "\n", " ", "\t", "\r":
                return (value, nil)
            case "'", "\"":
                let opening = scalars.startIndex
                var inside = scalars.dropFirst()
                var (part, closed) = quotedPart(&inside, by: c, withinLine: false)
                if !closed {
                    inside = scalars.dropFirst()
                    (part, _) = quotedPart(&inside, by: c, withinLine: true)
                    scalars = inside
                    return (value + part, opening)
                }
                value += part
                scalars = inside
            case "\\":
                scalars = scalars.dropFirst()
                if let escaped = scalars.first {
                    if escaped != "\n" { value.unicodeScalars.append(escaped) }
                    scalars = scalars.dropFirst()
                }
            default:
                value.unicodeScalars.append(c)
                scalars = scalars.dropFirst()
            }
        }
        return (value, nil)
    }

    /// The text of a part quoted by `quote`, read after its opening quote through its closing one: `'…'` is literal, in
    /// `"…"` a backslash escapes only `$`, `` ` ``, `"`, `\` and a newline. Not `closed` when the text ends first, or
    /// with `withinLine` the line (`scalars` is left at its end, `\n` or the `\r` of a CRLF).
    private static func quotedPart(_ scalars: inout Substring.UnicodeScalarView, by quote: Unicode.Scalar, withinLine: Bool) -> (String, closed: Bool) {
        var text = ""
        while let q = scalars.first {
            if q == quote {
                scalars = scalars.dropFirst()
                return (text, true)
            }
            if withinLine, q == "\n" || q == "\r" { return (text, false) }
            scalars = scalars.dropFirst()
            guard quote == "\"", q == "\\", let escaped = scalars.first, !(withinLine && escaped == "\n") else {
                text.unicodeScalars.append(q)
                continue
            }
            scalars = scalars.dropFirst()
            switch escaped {
            case "$", "`", "\"", "\\": text.unicodeScalars.append(escaped)
            case "\n": break  // a line continuation
            default: text += "\\" + String(escaped)  // not an escape in double quotes: both stay
            }
        }
        return (text, false)
    }
}
