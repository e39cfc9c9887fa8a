/// The `--lines` option of `task --logs` and `system --logs`: bounded, so a typo cannot print nothing
/// (0), be taken as valid (negative) or read a whole log history into memory.
enum LineCount {
    static let allowed = 1...100_000

    static func check(_ lines: Int) throws {
        guard allowed.contains(lines) else {
            throw CLIError("--lines must be between \(allowed.lowerBound) and \(allowed.upperBound) (got \(lines))")
        }
    }
}
