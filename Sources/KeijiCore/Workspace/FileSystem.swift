import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The few file operations Core needs beyond the journal, with keiji's permissions (0700 / 0600).
public enum FileSystem {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Whether `path` exists; throws "cannot read <path>: <reason>" when that cannot be told (a folder on the way
    /// that is not the caller's): taken as absent, another user's workspace read as "no workspace; run keiji init".
    public static func existsOrThrows(_ path: String) throws -> Bool {
        if access(path, F_OK) == 0 { return true }
        guard errno == ENOENT || errno == ENOTDIR else {
            throw KeijiError(.io, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        return false
    }

    /// The file's size in bytes; nil when it does not exist or cannot be read.
    public static func size(of path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates a directory and its parents; new ones get `mode`. One `mkdir` when the directory's parent exists
    /// (the scheduler asks for a run's folders at every run), a walk from the root only when it does not.
    public static func createDirectory(_ path: String, mode: mode_t = 0o700) throws {
        if mkdir(path, mode) == 0 || (errno == EEXIST && isDirectory(path)) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 { continue }
            // A file where a folder should be is named, not the folder under it that mkdir then fails on (ENOTDIR).
            if errno == EEXIST, !isDirectory(prefix) { throw KeijiError(.io, "cannot create directory \(path): \(prefix) is not a directory") }
            if errno != EEXIST {
                throw KeijiError(.io, "cannot create directory \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// The whole file; only a regular one (a link to one is followed), read without blocking on a FIFO (``RegularFile``).
    public static func read(_ path: String) throws -> Data {
        switch RegularFile.read(path, limit: Int.max, followLinks: true) {
        case .success(let bytes): return Data(bytes)
        case .failure(.absent): throw KeijiError(.notFound, "cannot read \(path): no such file")
        case .failure(.failed(EACCES)): throw KeijiError(.notFound, "cannot read \(path): permission denied")
        case .failure(let failure): throw KeijiError(.notFound, "cannot read \(path): \(failure)")
        }
    }

    /// Writes a file atomically (temporary sibling, fsync, rename, directory fsync) with `mode`.
    public static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o600) throws {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw KeijiError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { writeAll($0, to: fd) } && fsync(fd) == 0
        fchmod(fd, mode)
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw KeijiError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    /// Writes every byte of `bytes` to `fd` (a short write or EINTR continues); false with `errno` set on an error.
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }

    public static func remove(_ path: String) throws {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch CocoaError.fileNoSuchFile {
        } catch let error as CocoaError where error.code == .fileNoSuchFile {
        } catch {
            if exists(path) { throw KeijiError(.io, "cannot remove \(path): \(error.localizedDescription)") }
        }
    }
}
