import Foundation

/// Where the query view lives, as `DB_URL` says: SQLite in `~/.keiji/db/keiji.db` (`default`) or a PostgreSQL
/// database. Every reader and writer of the view opens it through here, so none of them can miss the setting.
public enum ViewLocation: Sendable, Equatable, CustomStringConvertible {
    /// `node`: the scheduler whose view it is (`NODE_NAME`), see ``ViewDatabase/node``.
    case sqlite(path: String, node: String = Settings.hostName())
    case postgres(URL, node: String = Settings.hostName())

    public init(settings: Settings, workspace: Workspace) {
        switch settings.database {
        case .sqlite: self = .sqlite(path: workspace.databaseFile, node: settings.nodeName)
        case .postgres(let url): self = .postgres(url, node: settings.nodeName)
        }
    }

    /// `sqlite` or `postgresql`.
    public var engine: String {
        switch self {
        case .sqlite: "sqlite"
        case .postgres: "postgresql"
        }
    }

    /// The file, or the URL with its password masked.
    public var address: String {
        switch self {
        case .sqlite(let path, _): path
        case .postgres(let url, _): Settings.Database.redacted(url)
        }
    }

    /// For people (`keiji system --status`): the engine and where, the password masked.
    public var description: String {
        switch self {
        case .sqlite(let path, _): "SQLite \(path)"
        case .postgres(let url, _): "PostgreSQL \(Settings.Database.redacted(url)) (DB_URL)"
        }
    }

    /// Opens the view read-write, resetting one that is missing, damaged or of another schema (see each back
    /// end's `openOrReset`; `verifying` is SQLite's page-by-page check). Returns whether it was created afresh
    /// (and so must be rebuilt).
    public func openOrReset(verifying: Bool = true) throws -> (any ViewDatabase, fresh: Bool) {
        switch self {
        case .sqlite(let path, let node): try SQLiteViewDatabase.openOrReset(path: path, node: node, verifying: verifying)
        case .postgres(let url, let node): try PostgresViewDatabase.openOrReset(url: url, node: node)
        }
    }

    /// Opens the view for reading; nil when there is none yet (no file, no tables).
    public func openForReading() throws -> (any ViewDatabase)? {
        switch self {
        case .sqlite(let path, let node): FileSystem.exists(path) ? try SQLiteViewDatabase(readingFrom: path, node: node) : nil
        case .postgres(let url, let node): try PostgresViewDatabase.openForReading(url: url, node: node)
        }
    }

    /// Fails, with a message naming `DB_URL`, when the scheduler could not open the view; changes nothing.
    /// A SQLite file is always usable (a damaged one is set aside and rebuilt).
    public func checkAccess() throws {
        guard case .postgres(let url, _) = self else { return }
        try PostgresViewDatabase.checkAccess(url: url)
    }
}
