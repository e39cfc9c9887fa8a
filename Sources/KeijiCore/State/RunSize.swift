/// What a run may pass to `execve`, checked when a task is saved: a description or command past it was saved, and then
/// every run ended as `could not start` (a run gets its description as `TASK_DESCRIPTION`, from its `.env`).
public enum RunSize {
    /// Linux's `MAX_ARG_STRLEN` (32 pages of 4 KiB): the most one argument, or one `NAME=value`, may take with its NUL.
    public static let perString = 131_072
    /// The spawn request's limit on a run's arguments and environment together (`KEIJI_SPAWN_MAX_MESSAGE`).
    public static let total = 262_144
    /// Of ``total``, what a save leaves for the rest each run takes: its own variables, the scheduler's `PATH`, `HOME`
    /// and the like, the program and the folder (about 1 KiB as usually set).
    public static let reserve = 4_096

    /// Throws one line naming the bound that `description` or `command` (nil for a built task) is past.
    public static func check(description: String, command: String?) throws {
        let variable = "TASK_DESCRIPTION=".utf8.count + description.utf8.count + 1
        if variable > perString {
            throw KeijiError(.invalidSetting, "--desc takes \(description.utf8.count) bytes; a run gets it as TASK_DESCRIPTION, and Linux passes "
                             + "at most \(perString) bytes per variable (NAME=value and its NUL): at most \(perString - "TASK_DESCRIPTION=".utf8.count - 1)")
        }
        guard let command else { return }
        let argument = command.utf8.count + 1
        if argument > perString {
            throw KeijiError(.invalidSetting, "--command takes \(command.utf8.count) bytes; Linux passes at most \(perString) bytes per argument (with its NUL)")
        }
        if variable + argument > total - reserve {
            throw KeijiError(.invalidSetting, "--command and --desc take \(variable + argument) bytes in a run; its arguments and environment may take at most "
                             + "\(total), \(reserve) of them kept for what each run adds (its variables, PATH, HOME, …)")
        }
    }
}
