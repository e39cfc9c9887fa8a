import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Swift task binaries in the cluster's database, so a task built on one node runs on every node with nothing
/// copied by hand. A command log row can carry only a few bytes well, so a `task.saved` of a Swift task names its
/// binary by SHA-256 (`keiji_commands.binary_sha256`) and the bytes are stored once per content, in 1 MiB parts
/// (a 50 MB binary never sits in memory whole, on either side).
///
/// The publisher stores the binary before it publishes the command (``ClusterDatabase/publish(_:)``), so every
/// node that reads the command finds it complete; a node applying the command installs the binary first
/// (``install(_:at:)``): downloaded, checked against its size and hash, and renamed into place, never run
/// unverified. A node whose installed file already has the hash (the publisher, or a command applied again after
/// a crash) downloads nothing: the installed binary is the node's cache, so nothing else grows on its disk.
public struct ClusterBinaries {
    /// Run with ``ClusterDatabase``'s own schema, in its transaction (under its advisory lock).
    /// `keiji_binaries` gets its row after every part is stored: a row means complete, so an upload cut midway is
    /// finished by the next one and never read half.
    static let schema = """
        CREATE TABLE IF NOT EXISTS keiji_binaries (
            sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL, parts INTEGER NOT NULL, stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS keiji_binary_parts (
            sha256 TEXT NOT NULL, part INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (sha256, part)
        );
        ALTER TABLE keiji_commands ADD COLUMN IF NOT EXISTS binary_sha256 TEXT;
        """

    public static let partSize = 1 << 20

    /// What ``install(_:at:)`` did.
    public enum Installation: Sendable, Equatable {
        /// The file in place already had the hash: nothing was read from the database.
        case present
        /// Downloaded (this many bytes), verified and installed.
        case downloaded(bytes: Int)
    }

    public let connection: PostgresConnection

    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// Stores the file at `path`, unless its content is stored already, and returns its SHA-256 (hex). Idempotent:
    /// parts already there are not sent again. The file is read through one descriptor for the hash and the
    /// upload, so a rebuild renaming a new binary over `path` meanwhile cannot mix two builds.
    /// - Throws: `.notFound` when the file cannot be opened, `.database` (one line naming DB_URL) when the
    ///   database does not take it.
    public func store(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw KeijiError(.notFound, "cannot read the task binary \(path) to share it with the cluster: \(String(cString: strerror(errno)))")
        }
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var hash = SHA256()
        var size = 0
        while let data = try file.read(upToCount: Self.partSize), !data.isEmpty {
            hash.update(data)
            size += data.count
        }
        let sha256 = hash.hexDigest()
        guard try connection.query("SELECT 1 FROM keiji_binaries WHERE sha256 = $1", [sha256]).isEmpty else { return sha256 }

        let stored = Set(try connection.query("SELECT part FROM keiji_binary_parts WHERE sha256 = $1", [sha256]).compactMap { $0[0].flatMap { Int($0) } })
        try file.seek(toOffset: 0)
        var part = 0
        while let data = try file.read(upToCount: Self.partSize), !data.isEmpty {
            if !stored.contains(part) {
                try connection.query("""
                    INSERT INTO keiji_binary_parts (sha256, part, data) VALUES ($1, $2, decode($3, 'hex')) ON CONFLICT DO NOTHING
                    """, [sha256, String(part), ClusterDatabase.hex(Array(data))])
            }
            part += 1
        }
        try connection.query("INSERT INTO keiji_binaries (sha256, size, parts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                             [sha256, String(size), String(part)])
        return sha256
    }

    /// Makes `target` the binary `sha256`, mode 0700: nothing to do when it is already; otherwise downloaded part
    /// by part beside it, checked (size, then hash), and renamed over it (a run in progress keeps its old inode).
    /// - Throws: `.database` (one line naming DB_URL) when the database fails: try again later. `.notFound` when the
    ///   database lacks the binary or a part of it, `.conflict` when the bytes do not match their hash, `.io` when
    ///   the file cannot be written: nothing was installed.
    @discardableResult
    public func install(_ sha256: String, at target: String) throws -> Installation {
        if try SHA256.file(target) == sha256 { return .present }
        let short = sha256.prefix(12)
        guard let manifest = try connection.query("SELECT size, parts FROM keiji_binaries WHERE sha256 = $1", [sha256]).first,
              let size = manifest[0].flatMap({ Int($0) }), let parts = manifest[1].flatMap({ Int($0) }) else {
            throw KeijiError(.notFound, "\(connection.name): the binary \(short)… for \(target) is not in keiji_binaries; not installed "
                             + "(build the task again on any node)")
        }
        try FileSystem.createDirectory((target as NSString).deletingLastPathComponent)
        let temporary = target + ".download-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o700)
        guard fd >= 0 else { throw KeijiError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var closed = false
        defer {
            if !closed { close(fd) }
            unlink(temporary)  // after the rename there is nothing left to remove
        }
        var hash = SHA256()
        var received = 0
        for part in 0..<parts {
            guard let text = try connection.query("SELECT encode(data, 'hex') FROM keiji_binary_parts WHERE sha256 = $1 AND part = $2",
                                                  [sha256, String(part)]).first?.first ?? nil,
                  let bytes = ClusterDatabase.bytes(fromHex: text) else {
                throw KeijiError(.notFound, "\(connection.name): part \(part) of the binary \(short)… for \(target) is missing; not installed")
            }
            received += bytes.count
            guard received <= size else { break }  // a part too long: refused below, before more is written
            hash.update(bytes)
            guard bytes.withUnsafeBytes({ FileSystem.writeAll($0, to: fd) }) else {
                throw KeijiError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
        }
        let actual = hash.hexDigest()
        guard received == size, actual == sha256 else {
            throw KeijiError(.conflict, "\(connection.name): the binary \(short)… for \(target) read back as \(received) bytes with SHA-256 "
                             + "\(actual.prefix(12))… (stored: \(size) bytes); not installed")
        }
        guard fchmod(fd, 0o700) == 0, fsync(fd) == 0 else { throw KeijiError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        close(fd)
        closed = true
        guard rename(temporary, target) == 0 else { throw KeijiError(.io, "cannot install \(target): \(String(cString: strerror(errno)))") }
        return .downloaded(bytes: received)
    }
}

extension ClusterDatabase {
    /// Publishes a command; a `task.saved` of a Swift task stores its binary first (``ClusterBinaries/store(_:)``)
    /// and names it in the command's row. The upload happens before the command log's advisory lock is taken:
    /// that lock serialises every node's commands, and must not wait on a 50 MB upload.
    /// `creating`: see ``publish(_:task:binary:creating:)``.
    public func publish(_ entry: JournalEntry, creating: Bool = false) throws -> Int64 {
        var binary: String?
        if case .taskSaved(let definition, _) = entry.event, case .binary(let path) = definition.action {
            binary = try ClusterBinaries(connection: connection).store(path)
        }
        return try publish(try entry.encoded(), task: entry.taskName?.rawValue ?? "", binary: binary, creating: creating)
    }
}
