/// Whether a command task's text needs a shell. A command made only of plain words is split on blanks and
/// exec'd directly (found in the run's PATH), as systemd's `ExecStart=` does: one exec, not `/bin/sh` and then
/// the program. Anything a shell would read differently from "split on blanks" goes to `/bin/sh -c`, so the
/// result is always what the shell would have done. The scheduler execs by this rule and `task --get` shows
/// it; docs/architecture.md §3 ("Direct exec") documents it.
public enum CommandWords {
    /// The command's words if it needs no shell, else nil. A word may hold only letters, digits, the bytes of
    /// non-ASCII UTF-8 characters and `- _ . / : , + @ %`; words are separated by spaces and tabs. Everything
    /// else needs a shell: quotes and backslashes, `$` and backquotes (expansions), `| & ; < > ( )`
    /// (operators), `* ? [ ] ~` (globs and the home directory), `# ! { } ^ =`, newlines and other control
    /// characters. `=` is allowed after the first word (`--level=3`), never in it (`A=1 cmd` is an
    /// assignment). The first word must not be a shell keyword or a builtin with no program of its own
    /// (`cd`, `exit`, `export`, `.`, …), nor a builtin of `/bin/sh` that is also a program (``shellBuiltinPrograms``):
    /// the shell runs its builtin, not the program. `sleep`, `printenv`, `env` run their /usr/bin programs.
    public static func plainWords(_ command: String) -> [String]? {
        var words: [String] = []
        for word in command.utf8.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
            let isFirst = words.isEmpty
            guard word.allSatisfy({ isPlain($0) || (!isFirst && $0 == UInt8(ascii: "=")) }) else { return nil }
            words.append(String(decoding: word, as: UTF8.self))
        }
        guard let first = words.first, !shellOnlyWords.contains(first) else { return nil }
        if shellBuiltinPrograms.contains(first), !(words.count == 1 && (first == "true" || first == "false")) { return nil }
        return words
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: ","),
             UInt8(ascii: "+"), UInt8(ascii: "@"), UInt8(ascii: "%"): true
        case 0x80...0xFF: true  // part of a UTF-8 character: literal to the shell
        default: false
        }
    }

    /// Builtins of dash (`/bin/sh`) that are also programs in /usr/bin, whose builtin the shell runs: they differ
    /// (`echo -e a` prints `a` from coreutils, `-e a` from dash; coreutils' `pwd` is physical, dash's logical;
    /// `kill`'s and `printf`'s options), so they go to the shell. A bare `true` or `false` stays direct: with no
    /// arguments the two do the same (given `--help`, coreutils' prints its help, the builtin nothing).
    public static let shellBuiltinPrograms: Set<String> = ["echo", "printf", "test", "kill", "pwd", "true", "false"]

    /// Reserved words, and builtins that have no program of their own (or whose program could not do what the
    /// builtin does, like `cd` or `exec`): these only make sense to a shell.
    public static let shellOnlyWords: Set<String> = [
        "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done", "in", "function", "select",
        "time", "coproc",
        ".", ":", "alias", "bg", "break", "builtin", "cd", "chdir", "command", "continue", "declare", "eval", "exec", "exit", "export",
        "fc", "fg", "getopts", "hash", "jobs", "let", "local", "logout", "read", "readonly", "return", "set", "shift",
        "source", "times", "trap", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
    ]
}
