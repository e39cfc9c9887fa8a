import ArgumentParser

/// `--name=` with nothing after the `=`. swift-argument-parser reads it as `--name` alone, and an option parsed
/// unconditionally (all of keiji's) then takes the next word as its value: `--name= --desc x` named the task
/// `--desc`, `--desc= hello` described it as `hello`. Refused before parsing, naming the option.
enum EmptyOptionValue {
    /// Throws a usage error (exit 64) for the first `--option=` before a `--` terminator.
    static func check(_ arguments: [String]) throws {
        for argument in arguments.prefix(while: { $0 != "--" }) where argument.hasPrefix("--") && argument.hasSuffix("=") {
            let option = argument.dropLast()
            guard option.count > 2, !option.contains("=") else { continue }
            // The hint ArgumentParser's own refusals end with (Keiji.main keeps it on the one line).
            let command = arguments.first { first in Keiji.configuration.subcommands.contains { $0.configuration.commandName == first } }
            let help = " (see 'keiji \(command.map { $0 + " " } ?? "")--help')"
            throw ValidationError("\(option) has no value: give it after the '=' (\(option)=<value>), or leave \(option) out\(help)")
        }
    }
}
