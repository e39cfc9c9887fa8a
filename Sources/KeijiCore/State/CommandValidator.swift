/// Checks a command against the current state before it is journaled, so the journal never holds a command
/// that could not apply (and the user gets the reason at once), nor one that would change nothing (`unchanged`:
/// enabling an enabled task, disabling a disabled one, resolving one not in error).
public enum CommandValidator {
    /// `answeringUnchanged`: false in a cluster, where a node's state may lag the database's command log (another
    /// node's `--disable` not pulled yet): there the command goes through and the cluster applies it in order.
    public static func validate(_ event: JournalEntry.Event, against state: SchedulerState, answeringUnchanged: Bool = true) throws {
        switch event {
        case .taskSaved(let definition, _):
            _ = try definition.validated()
            // Names are ASCII, so one that differs only in case has the same length: the others are passed over
            // without lower-casing them (this ran for every task at every save, on the engine's actor).
            let slug = definition.name.slug
            if let clash = state.tasks.keys.first(where: {
                $0.rawValue.utf8.count == slug.utf8.count && $0 != definition.name && $0.slug == slug
            }) {
                throw KeijiError(.alreadyExists, "a task named \(clash) already exists (names differing only in case would share logs)")
            }
        case .taskResolved(let name):
            guard let task = state.tasks[name] else { throw KeijiError(.notFound, "no task named \(name)") }
            if let refusal = task.refusal {
                throw KeijiError(.invalidSchedule, "task \(name) cannot be resolved: its definition is refused (\(refusal)); save it again with valid values")
            }
            if answeringUnchanged, !task.isError { throw KeijiError(.unchanged, "task \(name) is not in error") }
        case .taskEnabled(let name):
            guard let task = state.tasks[name] else { throw KeijiError(.notFound, "no task named \(name)") }
            if answeringUnchanged, !task.isDisabled { throw KeijiError(.unchanged, "task \(name) is already enabled") }
        case .taskDisabled(let name):
            guard let task = state.tasks[name] else { throw KeijiError(.notFound, "no task named \(name)") }
            if answeringUnchanged, task.isDisabled { throw KeijiError(.unchanged, "task \(name) is already disabled") }
        case .taskDeleted(let name):
            guard state.tasks[name] != nil else { throw KeijiError(.notFound, "no task named \(name)") }
        case .taskTriggered(let name):
            try RunNowRule.check(name, in: state)
        case .taskStopRequested(let name):
            // In a cluster the run may be on another node: the stop is published, and the node running it ends it.
            if answeringUnchanged {
                try StopRule.check(name, in: state)
            } else if state.tasks[name] == nil {
                throw KeijiError(.notFound, "no task named \(name)")
            }
        case .taskErrored(let name, _):
            guard state.tasks[name] != nil else { throw KeijiError(.notFound, "no task named \(name)") }
        default:
            throw KeijiError(.conflict, "\(JournalEntry(at: 0, event).typeName) is not a command")
        }
    }
}
