#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The real file system. Every call retries `EINTR`, completes short writes, and throws a ``JournalError``
/// naming the syscall and path on any other failure.
///
/// A ``pinned(to:)`` one reaches its directory and the files directly in it through a descriptor of the directory
/// (`openat`, `renameat`, `unlinkat`), never by path.
public struct PosixJournalIO: JournalIO {
    private let pin: PinnedDirectory?

    public init() { pin = nil }

    private init(pin: PinnedDirectory) { self.pin = pin }

    public func pinned(to directory: String) throws -> any JournalIO {
        let fd = retryingInterrupts { Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw Self.failure("open", directory) }
        return PosixJournalIO(pin: PinnedDirectory(path: directory, fd: fd))
    }

    /// The descriptor and name an `*at` call takes for `path`: the pinned directory's for the directory itself
    /// (`.`) and the files directly in it, the working directory's otherwise.
    private func at(_ path: String) -> (directory: Int32, name: String) {
        guard let pin else { return (AT_FDCWD, path) }
        if path == pin.path { return (pin.fd, ".") }
        guard path.hasPrefix(pin.path + "/") else { return (AT_FDCWD, path) }
        let name = path.dropFirst(pin.path.count + 1)
        return name.isEmpty || name.contains("/") ? (AT_FDCWD, path) : (pin.fd, String(name))
    }

    private func openDirectory(_ path: String) throws -> Int32 {
        let (directory, name) = at(path)
        let fd = retryingInterrupts { openat(directory, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw Self.failure("open", path) }
        return fd
    }

    public func createDirectory(_ path: String) throws {
        let (directory, name) = at(path)
        if directory != AT_FDCWD {
            // The pinned directory exists as long as it is pinned (re-made by path, it would be another one).
            guard name != ".", mkdirat(directory, name, 0o700) != 0, errno != EEXIST else { return }
            throw Self.failure("mkdir", path)
        }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw Self.failure("mkdir", prefix)
            }
        }
    }

    public func listDirectory(_ path: String) throws -> [String] {
        let fd = try openDirectory(path)
        guard let directory = fdopendir(fd) else {
            _ = Glibc.close(fd)
            throw Self.failure("opendir", path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func open(_ path: String, mode: FileOpenMode) throws -> FileDescriptor {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY
        case .readWrite: flags = O_RDWR
        case .createNew: flags = O_RDWR | O_CREAT | O_EXCL
        }
        let (directory, name) = at(path)
        // A segment a run (the same user) replaced with a FIFO held the open, and every command that opens the journal
        // and the scheduler's start, for ever; a link took the journal's reads and writes to another file. Only a
        // regular file is used, opened without blocking and without following a link.
        let fd = retryingInterrupts { openat(directory, name, flags | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, 0o600) }
        guard fd >= 0 else {
            var info = stat()
            if errno == ELOOP, fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 { throw Self.notAFile(path, info.st_mode) }
            throw Self.failure("open", path)
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            let failure = info.st_mode == 0 ? Self.failure("fstat", path) : Self.notAFile(path, info.st_mode)
            _ = Glibc.close(fd)
            throw failure
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return FileDescriptor(rawValue: fd)
    }

    /// "'open' failed on <path>: it is a FIFO, not a file" (a directory, a link, …).
    private static func notAFile(_ path: String, _ mode: mode_t) -> JournalError {
        JournalError(.io, "'open' failed on \(path): it is \(FileKind.described(mode)), not a file")
    }

    public func close(_ file: FileDescriptor) {
        _ = Glibc.close(file.rawValue)
    }

    public func size(of file: FileDescriptor) throws -> Int {
        var info = stat()
        guard fstat(file.rawValue, &info) == 0 else { throw Self.failure("fstat", "fd \(file.rawValue)") }
        return Int(info.st_size)
    }

    public func read(_ file: FileDescriptor, at offset: Int, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = retryingInterrupts {
                    pread(file.rawValue, buffer.baseAddress! + done, count - done, off_t(offset + done))
                }
                if n < 0 { throw Self.failure("pread", "fd \(file.rawValue)") }
                if n == 0 { break }
                done += n
            }
        }
        if done < count { bytes.removeLast(count - done) }
        return bytes
    }

    public func write(_ file: FileDescriptor, _ bytes: [UInt8], at offset: Int) throws {
        var done = 0
        try bytes.withUnsafeBytes { buffer in
            while done < buffer.count {
                let n = retryingInterrupts {
                    pwrite(file.rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
                }
                if n < 0 { throw Self.failure("pwrite", "fd \(file.rawValue)") }
                if n == 0 { throw Self.failure("pwrite", "fd \(file.rawValue) (it wrote nothing at offset \(offset + done))", errno: EIO) }
                done += n
            }
        }
    }

    public func sync(_ file: FileDescriptor) throws {
        // Never retried on failure: after a failed fdatasync the page cache may have dropped the dirty pages
        // (fsyncgate), so the journal fails stop instead.
        let result = retryingInterrupts { fdatasync(file.rawValue) }
        guard result == 0 else { throw Self.failure("fdatasync", "fd \(file.rawValue)") }
    }

    public func truncate(_ file: FileDescriptor, to size: Int) throws {
        let result = retryingInterrupts { ftruncate(file.rawValue, off_t(size)) }
        guard result == 0 else { throw Self.failure("ftruncate", "fd \(file.rawValue)") }
    }

    public func rename(_ source: String, to destination: String) throws {
        let (from, to) = (at(source), at(destination))
        guard renameat(from.directory, from.name, to.directory, to.name) == 0 else { throw Self.failure("rename", "\(source) → \(destination)") }
    }

    public func remove(_ path: String) throws {
        let (directory, name) = at(path)
        guard unlinkat(directory, name, 0) == 0 || errno == ENOENT else { throw Self.failure("unlink", path) }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = try openDirectory(path)
        defer { _ = Glibc.close(fd) }
        guard retryingInterrupts({ fsync(fd) }) == 0 else { throw Self.failure("fsync", path) }
    }

    /// How long a held lock is retried before the journal counts as in use. A process that forks while a
    /// journal is open (posix_spawn from another thread) holds the locked directory's description until its child
    /// execs, and `O_CLOEXEC` drops it; so a close followed at once by an open can find the lock still held for
    /// that moment. A real holder (a running scheduler) holds it for far longer than this. That moment passed 500 ms
    /// once on a loaded machine (the test suite with one of two cores kept busy: two offline commands found a lock
    /// no keiji process held), so the window is 2 s.
    static let lockRetryWindow: Duration = .seconds(2)

    public func lockDirectory(_ path: String) throws -> [FileDescriptor]? {
        // The directory's own lock, which no file deletion undoes; and the `LOCK` file's, which keiji took before
        // 2026-12-07, so that an older scheduler still running through an upgrade and this process exclude each
        // other. A file system that cannot lock a directory (NFS emulates flock with fcntl locks, which a read-only
        // descriptor cannot take) keeps the file's alone.
        var held: [FileDescriptor] = []
        let directory = try openDirectory(path)
        switch try lockExclusively(directory, path) {
        case .held: held.append(FileDescriptor(rawValue: directory))
        case .busy: return nil
        case .unsupported: _ = Glibc.close(directory)
        }
        let lockFile = at(path + "/LOCK")
        let file = retryingInterrupts { openat(lockFile.directory, lockFile.name, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        do {
            guard file >= 0 else { throw Self.failure("open", path + "/LOCK") }
            switch try lockExclusively(file, path + "/LOCK") {
            case .held: return held + [FileDescriptor(rawValue: file)]
            case .busy:
                held.forEach(close)
                return nil
            case .unsupported:
                _ = Glibc.close(file)
                throw Self.failure("flock", path + "/LOCK", errno: ENOLCK)
            }
        } catch {
            held.forEach(close)
            throw error
        }
    }

    private enum LockOutcome { case held, busy, unsupported }

    /// `flock(LOCK_EX)` on `fd`, retried for ``lockRetryWindow`` while held elsewhere; `fd` is closed unless held.
    private func lockExclusively(_ fd: Int32, _ path: String) throws -> LockOutcome {
        let clock = ContinuousClock()
        let deadline = clock.now + Self.lockRetryWindow
        while retryingInterrupts({ flock(fd, LOCK_EX | LOCK_NB) }) != 0 {
            let code = errno
            if code == EWOULDBLOCK, clock.now < deadline {
                usleep(2_000)
                continue
            }
            if code == EBADF || code == ENOLCK || code == EINVAL || code == EOPNOTSUPP { return .unsupported }
            _ = Glibc.close(fd)
            if code == EWOULDBLOCK { return .busy }
            throw Self.failure("flock", path, errno: code)
        }
        return .held
    }

    private static func failure(_ call: String, _ subject: String, errno code: Int32 = errno) -> JournalError {
        JournalError(.io, "'\(call)' failed on \(subject): \(String(cString: strerror(code)))", errno: code)
    }
}

/// The descriptor a pinned ``PosixJournalIO`` reaches its directory through, closed once no copy of that I/O is
/// left (a journal's ``JournalDirectory`` views may outlive the journal).
private final class PinnedDirectory: Sendable {
    let path: String
    let fd: Int32

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { _ = Glibc.close(fd) }
}

@inline(__always)
private func retryingInterrupts<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let result = body()
        if result < 0 && errno == EINTR { continue }
        return result
    }
}
