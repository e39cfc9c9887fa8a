import KeijiCore

/// How a task is exec'd: a binary task as `<path> --run`; a command directly or through `/bin/sh -c`, as
/// ``CommandWords`` decides.
struct ExecPlan: Sendable, Equatable {
    var program: String
    /// argv, argv[0] included.
    var arguments: [String]
    /// Look `program` up in PATH (a direct command's first word without a '/').
    var searchPath: Bool

    init(program: String, arguments: [String], searchPath: Bool) {
        (self.program, self.arguments, self.searchPath) = (program, arguments, searchPath)
    }

    init(_ action: TaskAction) {
        switch action {
        case .binary(let path):
            self.init(program: path, arguments: [path, "--run"], searchPath: false)
        case .command(let command):
            if let words = CommandWords.plainWords(command) {
                self.init(program: words[0], arguments: words, searchPath: true)
            } else {
                self.init(program: "/bin/sh", arguments: ["/bin/sh", "-c", command], searchPath: false)
            }
        }
    }
}
