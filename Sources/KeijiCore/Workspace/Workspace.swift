import Foundation

/// Every path keiji uses, from one place, rooted at a home directory (`$HOME` in production, a temporary
/// directory in tests). Nothing else in keiji builds a path by hand.
///
/// ```
/// ~/keiji/settings.conf            user settings            ~/.keiji/db/keiji.db      SQLite query view (DB_URL=default)
/// ~/keiji/tasks/<name>/            task sources             ~/.keiji/journal/         the journal
/// ~/keiji/Package.swift            the tasks' Swift package ~/.keiji/logs/{services,tasks}/
/// ~/.keiji/exec/tasks/<name>       built task binaries      ~/.keiji/exec/services/<svc>.pid
/// ~/.keiji/bus.token               bus credential (0600)    ~/.keiji/recovery.json    last recovery report
/// ~/.keiji/bus-{push,pull}.sock     keiji-bus's Unix sockets (0600)
/// ~/.keiji/metrics.token, dashboard.token   /metrics' bearer token, the dashboard's login (0600)
/// ```
public struct Workspace: Sendable, Equatable {
    public let home: String

    public init(home: String) {
        self.home = home.count > 1 && home.hasSuffix("/") ? String(home.dropLast()) : home
    }

    /// The workspace of the current user: `$HOME`, an absolute path (a relative one made a workspace under the current
    /// folder, which every later command found only from that same folder).
    public static func current() throws -> Workspace {
        guard let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty else {
            throw KeijiError(.invalidSetting, "HOME is not set; keiji keeps its files under $HOME")
        }
        guard home.hasPrefix("/") else {
            throw KeijiError(.invalidSetting, "HOME is a relative path (\(home)); keiji keeps its files under $HOME: set it to an absolute path")
        }
        return Workspace(home: home)
    }

    // MARK: User workspace (~/keiji)

    public var root: String { home + "/keiji" }
    public var settingsFile: String { root + "/settings.conf" }
    public var tasksDirectory: String { root + "/tasks" }
    public func taskDirectory(_ name: TaskName) -> String { tasksDirectory + "/" + name.rawValue }

    /// Checks `~/keiji` and each folder from it down to `directory` (a task's folder, the SDK's sources) before keiji
    /// writes there or runs what is there (``PrivateFolder/checkTrusted(_:)``). A folder outside `~/keiji` is not
    /// checked: `--create` and `--build` save none, and it is not keiji's to judge.
    public func checkFolders(downTo directory: String) throws {
        guard directory.hasPrefix(root + "/") else { return }
        var folder = root
        try PrivateFolder.checkTrusted(folder)
        for component in directory.dropFirst(root.count + 1).split(separator: "/") {
            folder += "/" + component
            try PrivateFolder.checkTrusted(folder)
        }
    }

    /// Checks the program a run in `directory` execs (``TrustedFile``), when it lies in `~/keiji` or `~/.keiji`: a script
    /// in the task's folder, a tool in `~/keiji`, a built task's binary. A path without a `/` is looked up on `PATH`, and a
    /// program elsewhere (`/usr/bin/python3`) is the system's: neither is keiji's to judge. A link is judged by where it
    /// leads. Costs one `lstat` for a program in the workspace, nothing for any other.
    public func checkProgram(_ program: String, runIn directory: String) throws {
        guard program.contains("/") else { return }
        let path = Self.lexicallyNormalized(program.hasPrefix("/") ? program : directory + "/" + program)
        guard contains(path) else { return }
        if Self.folder(of: path) != directory { try checkFolders(downTo: Self.folder(of: path)) }  // a tool of ~/keiji's own (the task's: checked)
        try checkFile(path)
    }

    /// Checks the file or folder at `path`, in the workspace, that keiji reads or runs as you (``TrustedFile``,
    /// ``PrivateFolder/checkTrusted(_:)``). A link is judged by where it leads, with the folders down to it, when that
    /// is in the workspace too; one to a system file is the system's. One that is not there passes.
    public func checkFile(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: try PrivateFolder.checkTrusted(path)
        case S_IFLNK:
            guard let target = realpath(path, nil) else { return }
            let resolved = String(cString: target)
            free(target)
            guard contains(resolved) else { return }
            try checkFolders(downTo: Self.folder(of: resolved))
            try TrustedFile.check(resolved)
        default: try TrustedFile.check(owner: info.st_uid, group: info.st_gid, mode: info.st_mode, at: path)
        }
    }

    /// Whether `path` (absolute, normalized) lies in `~/keiji` or `~/.keiji`.
    private func contains(_ path: String) -> Bool { path.hasPrefix(root + "/") || path.hasPrefix(systemRoot + "/") }

    /// The folder holding `path`.
    private static func folder(of path: String) -> String {
        String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
    }

    /// `path` with `.`, `..` and repeated slashes taken out, links left as they are: `tasks/t/../../../../usr/bin/x` is
    /// outside the workspace.
    static func lexicallyNormalized(_ path: String) -> String {
        var components: [Substring] = []
        for component in path.split(separator: "/") where component != "." {
            if component == ".." { _ = components.popLast() } else { components.append(component) }
        }
        return "/" + components.joined(separator: "/")
    }

    // MARK: System folder (~/.keiji)

    public var systemRoot: String { home + "/.keiji" }
    public var databaseDirectory: String { systemRoot + "/db" }
    public var databaseFile: String { databaseDirectory + "/keiji.db" }
    public var journalDirectory: String { systemRoot + "/journal" }
    public var logsDirectory: String { systemRoot + "/logs" }
    public var busTokenFile: String { systemRoot + "/bus.token" }
    /// The bearer token of `GET /metrics` and the dashboard's login: each its own, never the bus's (both are sent
    /// in clear to whatever holds their loopback port).
    public var metricsTokenFile: String { systemRoot + "/metrics.token" }
    public var dashboardTokenFile: String { systemRoot + "/dashboard.token" }
    /// keiji-bus's Unix sockets (the default transport): commands from the CLI, and the scheduler's link.
    public var busPushSocket: String { systemRoot + "/bus-push.sock" }
    public var busPullSocket: String { systemRoot + "/bus-pull.sock" }
    public var recoveryReportFile: String { systemRoot + "/recovery.json" }
    public var executablesDirectory: String { systemRoot + "/exec/tasks" }
    public var pidDirectory: String { systemRoot + "/exec/services" }
    /// Where a run's KEIJI_ERROR_FILE lives (`<run id>.error`, removed after the run).
    public var runErrorDirectory: String { systemRoot + "/exec/runs" }
    /// Where `keiji task --build` compiles tasks (one package for all of them, so the SDK compiles once).
    public var buildDirectory: String { systemRoot + "/build" }

    public func executable(for name: TaskName) -> String { executablesDirectory + "/" + name.rawValue }
    public func taskLogDirectory(_ name: TaskName) -> String { logsDirectory + "/tasks/" + name.slug }
    public func taskLogFile(_ name: TaskName) -> String { taskLogDirectory(name) + "/" + name.slug + ".log" }
    public func serviceLogDirectory(_ service: String) -> String { logsDirectory + "/services/" + service }
    public func serviceLogFile(_ service: String) -> String { serviceLogDirectory(service) + "/" + service + ".log" }
    public func pidFile(_ service: String) -> String { pidDirectory + "/" + service + ".pid" }

    /// Creates the system folders with mode 0700 (idempotent), and checks those there (``PrivateFolder``): one
    /// another user owns is refused; one others may write in is made 0700, and `say` hears the line saying so (as
    /// of a link a run put in place of `exec/runs`, replaced).
    public func createSystemDirectories(say: (String) -> Void = { StandardError.write("warning: \($0)\n") }) throws {
        for directory in [systemRoot, databaseDirectory, journalDirectory, logsDirectory, systemRoot + "/exec", executablesDirectory,
                          pidDirectory, runErrorDirectory, logsDirectory + "/tasks", logsDirectory + "/services"] {
            // The runs' folder is emptied at each start (``runErrorDirectory``): a link there is replaced, not followed.
            if let fixed = try PrivateFolder.prepare(directory, replacingLink: directory == runErrorDirectory) { say(fixed) }
        }
    }
}
