import Foundation

/// One PostgreSQL session per database for a whole short-lived process: a `keiji` call sets it as a task-local
/// (``current``) around its command. An offline `task --create` used to open three, to read the view, to publish
/// the command to the cluster and to write the view, and each costs the client a SCRAM exchange (4,096 PBKDF2
/// rounds, about 6 ms of CPU here) and the server a new backend: 53 ms a create, 36 ms of it the CLI's CPU
/// (docs/benchmarks.md, "the CLI's PostgreSQL sessions").
///
/// The session commits synchronously (`synchronous_commit=on`): the cluster's statements need it, and the view's
/// writes, which the scheduler makes without waiting for the server's WAL flush, wait for it in a single call
/// without anyone noticing. The CLI uses its connections from one task at a time, as ``PostgresConnection`` needs,
/// closes them as the call ends (also when it fails), and before a long wait (``close()``): a `--logs --follow` or
/// a `swift build` does not hold a backend of the server idle.
public final class SharedPostgresSession: @unchecked Sendable {
    /// The process's session, if it shares one; the scheduler does not (each of its threads has its own).
    @TaskLocal public static var current: SharedPostgresSession?

    static let options = ClusterDatabase.sessionOptions

    private let lock = NSLock()
    private var connections: [URL: PostgresConnection] = [:]

    public init() {}

    /// Closes the open connections (each ends its session cleanly); a later use opens a new one.
    public func close() {
        lock.withLock { connections.removeAll() }
    }

    /// The open connection to `url`, or a new one kept until ``close()``.
    func connection(to url: URL, name: String) throws -> PostgresConnection {
        try lock.withLock {
            if let open = connections[url] { return open }
            let made = try PostgresConnection(url: url, name: name, options: Self.options)
            connections[url] = made
            return made
        }
    }
}

extension PostgresConnection {
    /// A connection for keiji's own statements: the process's shared session when it has one
    /// (``SharedPostgresSession/current``), else a new connection with `options`.
    static func open(url: URL, name: String, options: String) throws -> PostgresConnection {
        if let shared = SharedPostgresSession.current { return try shared.connection(to: url, name: name) }
        return try PostgresConnection(url: url, name: name, options: options)
    }
}
