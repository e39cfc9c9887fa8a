import ArgumentParser
import KeijiCore

/// `keiji`: the command line for the scheduler, with the seed's commands and flags.
///
/// Every failure prints one line, `error: <reason>`, on stderr and exits non-zero (the original exited 0): 1 for a
/// command that failed, 64 (`EX_USAGE`) for a command line ArgumentParser refused before anything ran.
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
        Console.holdStandardDescriptors()
        let session = SharedPostgresSession()
        do {
            try await SharedPostgresSession.$current.withValue(session) {
                let arguments = Array(CommandLine.arguments.dropFirst())
                try EmptyOptionValue.check(arguments)
                try RepeatedOption.check(arguments)
                var command = try await asyncParseAsRoot(arguments)
                if var asyncCommand = command as? AsyncParsableCommand {
                    try await asyncCommand.run()
                } else {
                    try command.run()
                }
            }
            session.close()
            Console.end(0)
        } catch {
            session.close()
            exit(after: error)
        }
    }

    /// Ends the call after `error`. ArgumentParser's own refusal of a command line (an unknown flag, a value not
    /// of the flag's kind) is its message, the usage and a hint over several lines; keiji's is one line like every
    /// other failure, with the hint, and exit status 64 as ArgumentParser's. `--help` and `--version` print on stdout,
    /// through ``Console`` so that a failed write is reported (ArgumentParser's `print` dropped it); a failure
    /// already reported (``reportingErrors(_:)``) ends with its status.
    private static func exit(after error: any Error) -> Never {
        let code = exitCode(for: error)
        if code == .success {
            let text = fullMessage(for: error)
            if !text.isEmpty { Console.say(text) }
            Console.end(code.rawValue)
        }
        if let text = message(for: error).split(separator: "\n").first.map(String.init), !text.isEmpty {
            let help = fullMessage(for: error).split(separator: "\n")
                .compactMap { line in line.firstRange(of: "See '").map { String(line[$0.upperBound...].prefix(while: { $0 != "'" })) } }.first
            // A refusal made before parsing (``EmptyOptionValue``, ``RepeatedOption``) names its subcommand's help itself.
            let hinted = text.hasSuffix(" --help')")
            Console.error(text + (hinted ? "" : help.map { " (see '\($0)')" } ?? ""))
        }
        Console.end(code.rawValue)
    }
}
