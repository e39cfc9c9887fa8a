import Foundation
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Opening a file that a run may have replaced: a task runs as the same user and can put a FIFO, a device or a
/// symbolic link where keiji reads or writes (its `KEIJI_ERROR_FILE`, its log). Opened without `O_NONBLOCK`, a FIFO
/// with no writer held `open` for ever, and with it the run's end and then every run; followed, a link led keiji's
/// writes into a file someone else chose. So such a path is opened without blocking and, unless asked to follow a
/// link, without following one, and only a regular file is used.
public enum RegularFile {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Nothing there (`ENOENT`).
        case absent
        /// Something that is not a regular file: its `st_mode` (``kind(_:)`` names it).
        case notRegular(mode_t)
        /// Any other failure, with its `errno`.
        case failed(Int32)

        /// The reason, for "cannot open <path>: <reason>".
        public var description: String {
            switch self {
            case .absent: String(cString: strerror(ENOENT))
            case .notRegular(let mode): "it is \(FileKind.described(mode)), not a file"
            case .failed(let code): String(cString: strerror(code))
            }
        }
    }

    /// Opens `path` with `flags` (`O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK` added; no `O_NOFOLLOW` with `followLinks`) and
    /// returns the descriptor when it is a regular file, `O_NONBLOCK` cleared again (the descriptor may become a run's
    /// output). A final symbolic link is ``Failure/notRegular(_:)``.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o600, followLinks: Bool = false) -> Result<Int32, Failure> {
        let fd = Glibc.open(path, flags | O_CLOEXEC | O_NONBLOCK | (followLinks ? 0 : O_NOFOLLOW), mode)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { return .failure(.absent) }
            // ELOOP is what O_NOFOLLOW gives for a link; ENXIO a FIFO opened for writing with no reader.
            var info = stat()
            if code == ELOOP || code == ENXIO, lstat(path, &info) == 0 { return .failure(.notRegular(info.st_mode)) }
            return .failure(.failed(code))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            return .failure(.failed(code))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return .failure(.notRegular(info.st_mode))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return .success(fd)
    }

    /// At most `limit` bytes from the start of the regular file at `path` (``open(_:flags:mode:followLinks:)``).
    public static func read(_ path: String, limit: Int, followLinks: Bool = false) -> Result<[UInt8], Failure> {
        let fd: Int32
        switch open(path, flags: O_RDONLY, followLinks: followLinks) {
        case .success(let opened): fd = opened
        case .failure(let failure): return .failure(failure)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(limit, 64 << 10))
        while bytes.count < limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, min($0.count, limit - bytes.count)) }
            if count < 0, errno == EINTR { continue }
            if count < 0 { return .failure(.failed(errno)) }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return .success(bytes)
    }
}
