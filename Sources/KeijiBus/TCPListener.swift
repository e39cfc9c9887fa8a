import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A listening socket on `127.0.0.1` whose blocking `accept` runs on the bus's acceptor thread.
/// ``shutdown()`` (from any thread) makes a blocked `accept` return, which is how the server stops.
final class TCPListener: Sendable {
    let fd: Int32
    /// The bound port (the real one when 0 was asked for).
    let port: UInt16
    private let closed = Mutex(false)

    /// Binds and listens. `SO_REUSEADDR` so a restarted bus can bind while old connections sit in TIME_WAIT;
    /// a port held by a live listener still fails, with a message naming the port and its role.
    init(port: UInt16, role: String) throws {
        let fd = try Socket.makeStream(for: "the \(role) port")
        Socket.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        var address = Socket.loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 {
            let code = errno
            Socket.closeRetryingNothing(fd)
            let where_ = "\(Socket.loopback):\(port) (\(role) port)"
            if code == EADDRINUSE {
                throw KeijiError(.conflict, "cannot listen on \(where_): the port is already in use (is another keiji-bus running?)")
            }
            throw KeijiError(.io, "cannot listen on \(where_): \(Socket.errorText(code))")
        }
        guard listen(fd, 64) == 0 else {
            let code = errno
            Socket.closeRetryingNothing(fd)
            throw KeijiError(.io, "cannot listen on \(Socket.loopback):\(port) (\(role) port): \(Socket.errorText(code))")
        }
        self.fd = fd
        self.port = Socket.localPort(fd) ?? port
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
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                // accept4 is not imported without _GNU_SOURCE; the bus never forks, so setting close-on-exec
                // right after accepting is equivalent here.
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return .connection(LineConnection(fd: client))
            }
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

    /// Releases the descriptor once the acceptor thread has returned from ``accept()``.
    func close() {
        shutdown()
        Socket.closeRetryingNothing(fd)
    }
}
