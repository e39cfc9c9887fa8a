/// The journal's only door to the operating system.
///
/// Every syscall that matters for durability (`pwrite`, `fdatasync`, `rename`, `unlink`, directory `fsync`,
/// `ftruncate`, `flock`) goes through this protocol, so tests can swap in an implementation that injects faults
/// and enumerates crash states. ``PosixJournalIO`` is the real one.
///
/// Contract for implementations:
/// - `write` writes all bytes or throws; a partial write that then fails leaves the partial bytes in place,
///   as a real disk would (the journal then fails stop).
/// - `sync(_:)` makes the file's data durable; `syncDirectory(_:)` makes creates, renames and removals
///   inside the directory durable. Nothing else is durable.
/// - Errors are ``JournalError`` values with code `.io` naming the call and carrying the errno.
public protocol JournalIO: Sendable {
    /// Creates a directory (and missing parents) with mode 0700. Succeeds if it already exists.
    func createDirectory(_ path: String) throws
    /// Names of the entries of a directory, without `.` and `..`, in no particular order.
    func listDirectory(_ path: String) throws -> [String]
    /// Opens a file. New files are created with mode 0600.
    func open(_ path: String, mode: FileOpenMode) throws -> FileDescriptor
    /// Closes a descriptor. Never retried, never throws.
    func close(_ file: FileDescriptor)
    /// The file's current size in bytes.
    func size(of file: FileDescriptor) throws -> Int
    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    func read(_ file: FileDescriptor, at offset: Int, count: Int) throws -> [UInt8]
    /// Writes all of `bytes` at `offset` (never appends implicitly). The corresponding C function is `pwrite`.
    func write(_ file: FileDescriptor, _ bytes: [UInt8], at offset: Int) throws
    /// Makes the file's data durable. The corresponding C function is `fdatasync`.
    func sync(_ file: FileDescriptor) throws
    /// Cuts or extends the file to `size`. The corresponding C function is `ftruncate`.
    func truncate(_ file: FileDescriptor, to size: Int) throws
    /// Atomically renames a file, replacing the destination.
    func rename(_ source: String, to destination: String) throws
    /// Removes a file. Removing a missing file is not an error.
    func remove(_ path: String) throws
    /// Makes the directory's entries durable. The corresponding C function is `fsync` on the directory.
    func syncDirectory(_ path: String) throws
    /// Takes exclusive advisory locks that make the directory at `path` single-writer, the directory's own among
    /// them (a lock on a file in it alone can be deleted from under its holder), without waiting. Returns `nil` when
    /// another process holds them. They live until the descriptors returned are closed.
    func lockDirectory(_ path: String) throws -> [FileDescriptor]?
    /// This I/O with `directory` and the files directly in it reached through a descriptor of the directory opened
    /// now, not by path: a journal whose directory is deleted or moved away then never writes into, or deletes from,
    /// a directory made at the same path since (another workspace's journal). No default: a wrapper of the real I/O
    /// that did not forward it ran its journal by path, unpinned, without a word. An I/O without descriptors of its
    /// own (a test's in-memory one) returns itself.
    func pinned(to directory: String) throws -> any JournalIO
}

/// An open file, as an opaque number owned by the ``JournalIO`` that returned it.
public struct FileDescriptor: Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
}

/// How ``JournalIO/open(_:mode:)`` opens a file. There is deliberately no append mode: on Linux `pwrite`
/// ignores its offset on an `O_APPEND` descriptor.
public enum FileOpenMode: Sendable {
    case readOnly
    case readWrite
    /// Create a new file; fail if it exists.
    case createNew
}

extension JournalIO {
    /// Reads a whole file.
    func readAll(_ path: String) throws -> [UInt8] {
        let file = try open(path, mode: .readOnly)
        defer { close(file) }
        return try read(file, at: 0, count: try size(of: file))
    }

    /// Writes `bytes` to `path` atomically and durably: a `.tmp` sibling is written and synced, renamed
    /// over `path`, and the directory synced.
    func writeAtomically(_ bytes: [UInt8], to path: String, directory: String) throws {
        let temporary = path + ".tmp"
        try remove(temporary)
        let file = try open(temporary, mode: .createNew)
        do {
            try write(file, bytes, at: 0)
            try sync(file)
        } catch {
            close(file)
            throw error
        }
        close(file)
        try rename(temporary, to: path)
        try syncDirectory(directory)
    }
}
