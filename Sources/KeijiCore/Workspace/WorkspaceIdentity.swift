#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The directories a service started in (`~/.keiji`, and the scheduler's journal folder), by device and inode, so it
/// can tell when their paths lead elsewhere: deleted (`rm -rf ~/.keiji`) or moved aside and perhaps made anew by
/// `keiji init`. No keiji command reaches such a service any more (its pid files and sockets went with the folder),
/// and left running it fired the old workspace's tasks beside a new scheduler. One `stat` per folder per check.
public struct WorkspaceIdentity: Sendable {
    private struct Identity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    private let watched: [(path: String, identity: Identity)]

    /// The identities of `paths` now; a path that cannot be read now is not watched.
    public init(_ paths: [String]) {
        watched = paths.compactMap { path in Self.identity(of: path).map { (path, $0) } }
    }

    /// `~/.keiji`, taken as the service starts, before anything long (the scheduler's recovery): taken after, a
    /// folder moved meanwhile and made anew by `keiji init` was taken for its own.
    public init(_ workspace: Workspace) {
        self.init([workspace.systemRoot])
    }

    private init(watched: [(path: String, identity: Identity)]) { self.watched = watched }

    /// These paths and `path` too, as it is now (the scheduler's journal folder, which the journal makes as it opens).
    public func watching(_ path: String) -> WorkspaceIdentity {
        WorkspaceIdentity(watched: watched + (Self.identity(of: path).map { [(path, $0)] } ?? []))
    }

    /// Why a watched path no longer leads to the folder it led to at the start, in words for a log line; nil while
    /// all do.
    public func change() -> String? {
        for (path, identity) in watched {
            guard let now = Self.identity(of: path) else {
                // Only a path that is gone counts: a folder made unreadable a moment (EACCES) is still the same folder.
                if errno == ENOENT || errno == ENOTDIR { return "\(path) was deleted or moved away" }
                continue
            }
            if now != identity { return "\(path) was replaced by another folder (deleted or moved away, and made anew)" }
        }
        return nil
    }

    private static func identity(of path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}
