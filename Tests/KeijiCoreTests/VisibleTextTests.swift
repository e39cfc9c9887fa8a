import KeijiCore
import Testing

/// How `--get` and a run's "cannot start" show text a user or a task wrote: on one line, nothing that looks like
/// something else.
struct VisibleTextTests {
    /// Controls show as escapes, and so do the spaces other than U+0020: a no-break space in `echo\u{A0}nbsp` showed
    /// as a plain one, so `cannot start echo nbsp` looked as if `echo` were missing.
    @Test func controlsAndUnicodeSpacesAreEscaped() {
        #expect(VisibleText.escaped("plain text, back\\slash, héllo") == "plain text, back\\slash, héllo")
        #expect(VisibleText.escaped("a\nb\tc\rd\u{1B}[31m\u{85}") == #"a\nb\tc\rd\u{1B}[31m\u{85}"#)
        #expect(VisibleText.escaped("echo\u{A0}nbsp\u{2003}em\u{202F}\u{3000}\u{2028}\u{2029}") == #"echo\u{A0}nbsp\u{2003}em\u{202F}\u{3000}\u{2028}\u{2029}"#)
    }
}
