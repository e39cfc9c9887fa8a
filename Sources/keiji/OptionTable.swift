import ArgumentParser

/// Which options go with which action, for `keiji task` and `keiji system`: an option the chosen action does not take
/// is a usage error naming both (exit 64), where it used to be ignored.
enum OptionTable {
    /// The refusal of the first of `given` (each option with the actions that take it) that `action` does not take.
    static func misfit(_ given: [(option: String, actions: [String])], action: String) -> ValidationError? {
        guard let (option, actions) = given.first(where: { !$0.actions.contains(action) }) else { return nil }
        let takers = actions.count == 1 ? actions[0] : actions.dropLast().joined(separator: ", ") + " or " + actions[actions.count - 1]
        return ValidationError("\(option) goes with \(takers), not \(action)")
    }
}
