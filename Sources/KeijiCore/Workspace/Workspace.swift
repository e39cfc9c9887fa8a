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
