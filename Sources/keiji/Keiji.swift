import ArgumentParser
import KeijiCore

/// `keiji`: the command line for the scheduler, with the seed's commands and flags.
///
/// Every failure prints one line, `error: <reason>`, on stderr and exits non-zero (the original exited 0).
/// Each command is a fresh process, so a release build links the Swift runtime and Foundation statically
/// (`Package.swift`; figures from `scripts/bench-cli` in docs/benchmarks.md).
@main
struct Keiji: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keiji",
        abstract: "A crash-safe task scheduler: every firing and command is journaled before it takes effect.",
        subcommands: [InitCommand.self, TaskCommand.self, SystemCommand.self, JournalCommand.self]
    )

    /// Runs the command with one PostgreSQL session per database for the whole call (``SharedPostgresSession``).
    static func main() async {
        await SharedPostgresSession.$current.withValue(SharedPostgresSession()) { await main(nil) }
    }
}
