#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The command line as the bytes it was given. Swift decodes each word into a `String` with every byte that is not
/// UTF-8 replaced by U+FFFD, so a `--command` holding one was journaled, and run, as another command; only the
/// raw words tell.
enum RawArguments {
    /// What names the first word that is not valid UTF-8: its option (`--command value` or `--command=value`), else
    /// its position; nil when every word is valid.
    static func notUTF8() -> String? {
        var previous: String?
        for index in 1..<Int(CommandLine.argc) {
            guard let word = CommandLine.unsafeArgv[index] else { break }
            if let text = String(validatingCString: word) {
                previous = text
                continue
            }
            let text = String(cString: word)
            if text.hasPrefix("--"), let equals = text.firstIndex(of: "=") { return String(text[..<equals]) }
            if let previous, previous.hasPrefix("--"), !previous.contains("=") { return previous }
            return "argument \(index)"
        }
        return nil
    }
}
