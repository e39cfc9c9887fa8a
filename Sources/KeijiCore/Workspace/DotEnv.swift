import Foundation

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

    /// Every `KEY=value` in `text`; a later line for the same key wins, as in a shell. Read scalar by scalar,
    /// so a quote followed by a combining mark, or a CRLF line end, is never merged into one character.
    public static func decode(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        var rest = text.unicodeScalars[...]
        func isBlank(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\r" }
        while !rest.isEmpty {
            rest = rest.drop { isBlank($0) || $0 == "\n" }
            if rest.first == "#" {
                rest = rest.drop { $0 != "\n" }
                continue
            }
            if rest.starts(with: "export ".unicodeScalars) { rest = rest.dropFirst(7).drop(while: isBlank) }
            let key = rest.prefix { $0 != "=" && $0 != "\n" }
            rest = rest.dropFirst(key.count)
            guard rest.first == "=" else { continue }  // not an assignment: skip the line
            rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" }
            let value = readValue(&rest)
            let name = String(key).trimmingSpaces()
            if isValidKey(name) { values[name] = value }
            rest = rest.drop { $0 != "\n" }  // anything after the value (a comment) ends at the line's end
        }
        return values
    }

    /// The values in the file at `path`, or none if there is no file.
    public static func load(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        return decode(String(decoding: data, as: UTF8.self))
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

    /// Reads one shell word from `rest`, up to an unquoted blank or newline.
    private static func readValue(_ scalars: inout Substring.UnicodeScalarView) -> String {
        var value = ""
        while let c = scalars.first {
            switch c {
            case "\n", " ", "\t", "\r":
                return value
            case "'":
                scalars = scalars.dropFirst()
                while let q = scalars.first, q != "'" {
                    value.unicodeScalars.append(q)
                    scalars = scalars.dropFirst()
                }
                scalars = scalars.dropFirst()
            case "\"":
                scalars = scalars.dropFirst()
                while let q = scalars.first, q != "\"" {
                    scalars = scalars.dropFirst()
                    guard q == "\\", let escaped = scalars.first else {
                        value.unicodeScalars.append(q)
                        continue
                    }
                    scalars = scalars.dropFirst()
                    switch escaped {
                    case "$", "`", "\"", "\\": value.unicodeScalars.append(escaped)
                    case "\n": break  // a line continuation
                    default: value += "\\" + String(escaped)  // not an escape in double quotes: both stay
                    }
                }
                scalars = scalars.dropFirst()
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
        return value
    }
}
