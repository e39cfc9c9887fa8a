import CSocket
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A listening socket (a Unix socket, or TCP on `127.0.0.1`) whose blocking `accept` runs on the bus's
/// acceptor thread. ``shutdown()`` (from any thread) makes a blocked `accept` return, which is how the
/// server stops.
final class BusListener: Sendable {
    let fd: Int32
    /// The bound endpoint (for TCP, the real port when 0 was asked for).
    let endpoint: BusEndpoint
    /// The socket file's inode, so ``close()`` removes our socket file and never a successor's.
    private let socketInode: ino_t?
    private let closed = Mutex(false)

    /// Binds and listens. TCP: `SO_REUSEADDR` so a restarted bus can bind while old connections sit in
    /// TIME_WAIT. Unix: a socket file nobody listens on (left by a bus that was killed) is replaced, one a
    /// live bus answers on is not. Either way a live listener makes this fail with a message naming the
    /// endpoint and its role. Unix sockets are made 0600 (their directory, `~/.keiji`, is 0700 already).
    init(_ endpoint: BusEndpoint, role: String) throws {
        let where_ = "\(endpoint) (\(role))"
        if case .unix(let path) = endpoint { try Self.removeStaleSocket(path, where_: where_) }
        let fd = try Socket.makeStream(for: endpoint, what: "the \(role) endpoint")
        if case .tcp = endpoint { Socket.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
        let bound: Int32
        do {
            bound = try Socket.withAddress(endpoint) { bind(fd, $0, $1) }
        } catch {
            Socket.closeRetryingNothing(fd)
            throw error
        }
        if bound != 0 {
            let code = errno
            Socket.closeRetryingNothing(fd)
            if code == EADDRINUSE {
                throw KeijiError(.conflict, "cannot listen on \(where_): the address is already in use (is another keiji-bus running?)")
            }
            throw KeijiError(.io, "cannot listen on \(where_): \(Socket.errorText(code))")
        }
        var inode: ino_t?
        if case .unix(let path) = endpoint {
            _ = chmod(path, 0o600)
            var info = stat()
            if lstat(path, &info) == 0 { inode = info.st_ino }
        }
        guard listen(fd, 64) == 0 else {
            let code = errno
            Socket.closeRetryingNothing(fd)
            throw KeijiError(.io, "cannot listen on \(where_): \(Socket.errorText(code))")
        }
        self.fd = fd
        self.socketInode = inode
        switch endpoint {
        case .tcp(let port): self.endpoint = .tcp(port: Socket.localPort(fd) ?? port)
        case .unix: self.endpoint = endpoint
        }
    }

    /// Removes a leftover socket file at `path` if nothing listens on it; throws if a live bus does, or if
    /// the path is something other than a socket (never delete a user's file).
    private static func removeStaleSocket(_ path: String, where_: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw KeijiError(.conflict, "cannot listen on \(where_): the path exists and is not a socket")
        }
        if let probe = try? LineConnection.connect(to: .unix(path: path), what: "probe") {
            probe.close()
            throw KeijiError(.conflict, "cannot listen on \(where_): another keiji-bus is already listening there")
        }
        unlink(path)
    }

    enum Accepted {
        case connection(LineConnection)
        /// A transient failure (out of descriptors, aborted handshake): try again.
        case retry(String)
        /// The listener was shut down.
        case stopped
    }

    /// Blocks until a client connects. Acceptor thread only.
    func accept() -> Accepted {
        while true {
            let client = keiji_accept_cloexec(fd)
            if client >= 0 { return .connection(LineConnection(fd: client)) }
            let code = errno
            if closed.withLock({ $0 }) { return .stopped }
            switch code {
            case EINTR, ECONNABORTED, EPROTO: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .retry(Socket.errorText(code))
            case EINVAL, EBADF: return .stopped  // shut down under us
            default: return .retry(Socket.errorText(code))
            }
        }
    }

    /// Wakes a blocked ``accept()`` and releases the port. Idempotent.
    func shutdown() {
        closed.withLock { isClosed in
            guard !isClosed else { return }
            isClosed = true
            _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    /// Releases the descriptor (and our socket file) once the acceptor thread has returned from ``accept()``.
    func close() {
        shutdown()
        if case .unix(let path) = endpoint, let socketInode {
            var info = stat()
            if lstat(path, &info) == 0, info.st_ino == socketInode { unlink(path) }
        }
        Socket.closeRetryingNothing(fd)
    }
}
