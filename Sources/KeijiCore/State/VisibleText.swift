/// Text a task or a user wrote, shown on one line as it reads: its control characters and its spaces other than
/// U+0020 as Swift's escapes (`\n`, `\t`, `\r`, `\u{1B}`, `\u{A0}`). A newline printed raw split a `Key: value` line
/// of `--get` (the next line read as a key), an ESC or OSC sequence moved the cursor or retitled the terminal, and a
/// no-break space in `echo\u{A0}x` read as a plain one (`cannot start echo x` looked as if `echo` were missing). A
/// backslash stays as it is: `--json` has the exact text. `--logs` prints the task's output as it is, as `cat` would.
public enum VisibleText {
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isHidden) else { return text }
        var shown = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": shown += "\\n"
            case "\t": shown += "\\t"
            case "\r": shown += "\\r"
            case _ where isHidden(scalar): shown += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: shown.unicodeScalars.append(scalar)
            }
        }
        return shown
    }

    /// C0 and C1 controls, and Unicode's other spaces (White_Space: U+00A0, U+2000–U+200A, U+3000, …), among them the
    /// two line breaks some readers split lines at (U+2028, U+2029, as Python's `splitlines()`).
    private static func isHidden(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || (scalar != " " && scalar.properties.isWhitespace)
    }
}
