/// A count given on the command line, bounded so a typo cannot ask for nothing (0), be taken as valid
/// (negative) or read a whole history into memory. Out of range is one line naming the flag and its range.
struct CountOption {
    let flag: String
    let allowed: ClosedRange<Int>

    /// `--lines` of `task --logs` and `system --logs`.
    static let lines = CountOption(flag: "--lines", allowed: 1...100_000)
    /// `--limit` of `task --runs`. The view keeps ``SchedulerState/recentRunLimit`` runs per task; older ones are
    /// only in the journal.
    static let runLimit = CountOption(flag: "--limit", allowed: 1...1000)

    func check(_ value: Int) throws {
        guard allowed.contains(value) else {
            throw CLIError("\(flag) must be between \(allowed.lowerBound) and \(allowed.upperBound) (got \(value))")
        }
    }
}
