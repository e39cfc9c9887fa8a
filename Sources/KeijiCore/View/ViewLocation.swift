import Foundation

/// Where the query view lives, as `DB_URL` says: SQLite in `~/.keiji/db/keiji.db` (`default`) or a PostgreSQL
/// database. Every reader and writer of the view opens it through here, so none of them can miss the setting.
public enum ViewLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(URL)

    public init(settings: Settings, workspace: Workspace) {
        switch settings.database {
        case .sqlite: self = .sqlite(path: workspace.databaseFile)
        case .postgres(let url): self = .postgres(url)
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
        case .sqlite(let path): path
        case .postgres(let url): Settings.Database.redacted(url)
        }
    }

    /// For people (`keiji system --status`): the engine and where, the password masked.
    public var description: String {
        switch self {
        case .sqlite(let path): "SQLite \(path)"
        case .postgres(let url): "PostgreSQL \(Settings.Database.redacted(url)) (DB_URL)"
        }
    }

    /// Opens the view read-write, resetting one that is missing, damaged or of another schema (see each back
    /// end's `openOrReset`). Returns whether it was created afresh (and so must be rebuilt).
    public func openOrReset() throws -> (any ViewDatabase, fresh: Bool) {
        switch self {
        case .sqlite(let path): try SQLiteViewDatabase.openOrReset(path: path)
        case .postgres(let url): try PostgresViewDatabase.openOrReset(url: url)
        }
    }

    /// Opens the view for reading; nil when there is none yet (no file, no tables).
    public func openForReading() throws -> (any ViewDatabase)? {
        switch self {
        case .sqlite(let path): FileSystem.exists(path) ? try SQLiteViewDatabase(readingFrom: path) : nil
        case .postgres(let url): try PostgresViewDatabase.openForReading(url: url)
        }
    }

    /// Fails, with a message naming `DB_URL`, when the scheduler could not open the view; changes nothing.
    /// A SQLite file is always usable (a damaged one is set aside and rebuilt).
    public func checkAccess() throws {
        guard case .postgres(let url) = self else { return }
        try PostgresViewDatabase.checkAccess(url: url)
    }
}
