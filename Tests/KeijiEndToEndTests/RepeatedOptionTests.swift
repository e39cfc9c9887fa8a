import ArgumentParser
import Testing
@testable import keiji

/// ``RepeatedOption`` on a command of its own: keiji declares no option that may repeat, and none after a `--`.
struct RepeatedOptionTests {
    struct Tool: ParsableCommand {
        @Option(parsing: .unconditional) var name: String?
        @Option var tag: [String] = []
        @Flag var verbose = false
        @Argument var rest: [String] = []
    }

    /// Refused with the option's name, or nil when let through.
    func refusal(_ arguments: [String]) -> String? {
        do {
            try RepeatedOption.check(arguments, for: Tool.self)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func anOptionDeclaredToRepeatPasses() {
        #expect(refusal(["--tag", "a", "--tag=b", "--tag", "c"]) == nil)
        #expect(refusal(["--verbose", "--verbose"]) == nil)
        #expect(refusal(["--name", "a", "--name=b"]) == "--name was given twice: give it once (see 'tool --help')")
    }

    /// After `--` every word is a value: `-- --name x` names nothing.
    @Test func wordsAfterTheTerminatorAreValues() {
        #expect(refusal(["--name", "a", "--", "--name", "b"]) == nil)
    }

    /// An option parsed unconditionally takes the next word whatever it is; one parsed by default no word starting with '-'.
    @Test func eachOptionTakesTheWordsItsParsingTakes() {
        #expect(refusal(["--name", "--name", "--tag", "x"]) == nil)
        #expect(refusal(["--tag", "--name", "a", "--name", "b"]) != nil)
    }
}
