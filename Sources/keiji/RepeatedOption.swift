import ArgumentParser
import Foundation

/// A single-value option given twice (`--every 1h --every 2h`): ArgumentParser keeps the last value without a word,
/// so a slip made a 2-hour task. Refused before parsing, naming the option; an option declared to repeat (an array)
/// passes. Which options take a value, and which may repeat, is read from ArgumentParser's own description of the
/// commands (`_dumpHelp()`, the JSON of `--experimental-dump-help`), so an option is covered as soon as it is declared.
enum RepeatedOption {
    /// Throws a usage error (exit 64) for the first single-value option given a second time before a `--` terminator,
    /// as `--name=a` or `--name a`; a value that looks like an option (`--desc --every`) is the value, not the option.
    /// `root`: the command tree the arguments are for.
    static func check(_ arguments: [String], for root: any ParsableCommand.Type = Keiji.self) throws {
        let words = arguments.prefix(while: { $0 != "--" })
        // The description is read only when a word is there twice: it costs more than the parse of a whole call.
        var seen = Set<Substring>()
        guard words.contains(where: { $0.hasPrefix("-") && !seen.insert(spelling($0)).inserted }) else { return }
        var command = try JSONDecoder().decode(ToolInfo.self, from: Data(root._dumpHelp().utf8)).command
        var path = [command.commandName]
        var rest = words[...]
        while let first = rest.first, let subcommand = command.subcommands?.first(where: { $0.commandName == first }) {
            (command, rest) = (subcommand, rest.dropFirst())
            path.append(first)
        }
        var options: [Substring: ArgumentInfo] = [:]
        for argument in command.arguments ?? [] where argument.kind == "option" {
            for name in argument.names ?? [] { options[Substring(name.spelled)] = argument }
        }
        var given = Set<String>()
        while let word = rest.popFirst() {
            guard word.hasPrefix("-"), let option = options[spelling(word)] else { continue }
            // The next word is this option's value (ArgumentParser takes it whatever it looks like when unconditional).
            if !word.contains("="), let value = rest.first, option.parsingStrategy == "unconditional" || !value.hasPrefix("-") {
                rest.removeFirst()
            }
            guard !option.isRepeating else { continue }
            let name = option.preferredName?.spelled ?? String(spelling(word))
            guard given.insert(name).inserted else {
                // The hint ArgumentParser's own refusals end with (Keiji.main keeps it on the one line).
                throw ValidationError("\(name) was given twice: give it once (see '\(path.joined(separator: " ")) --help')")
            }
        }
    }

    /// The option a word spells: `--name` of `--name=a`.
    private static func spelling(_ word: String) -> Substring { word.prefix(while: { $0 != "=" }) }

    /// The parts of ArgumentParser's `ToolInfoV0` read here (its module is not a product of the package).
    private struct ToolInfo: Decodable {
        var command: CommandInfo
    }

    private struct CommandInfo: Decodable {
        var commandName: String
        var subcommands: [CommandInfo]?
        var arguments: [ArgumentInfo]?
    }

    private struct ArgumentInfo: Decodable {
        struct Name: Decodable {
            var kind: String
            var name: String
            var spelled: String { (kind == "long" ? "--" : "-") + name }
        }

        var kind: String
        var isRepeating: Bool
        var parsingStrategy: String
        var names: [Name]?
        var preferredName: Name?
    }
}
