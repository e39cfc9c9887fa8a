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

    /// Runs the command with one PostgreSQL session per database for the whole call (``SharedPostgresSession``),
    /// closed as the call ends: ArgumentParser's own `main` ends a failed call with `exit`, which no `defer` outlives.
    static func main() async {
        let session = SharedPostgresSession()
        do {
            try await SharedPostgresSession.$current.withValue(session) {
                var command = try await asyncParseAsRoot()
                if var asyncCommand = command as? AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
            }
            session.close()
        } catch {
            session.close()
            exit(withError: error)
        }
    }
}
