import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The handful of POSIX socket calls the bus needs: Unix sockets, or TCP on loopback only. Plain sockets
/// rather than a networking framework: the bus is a few hundred lines of line-oriented I/O, and keeping it on raw
/// syscalls means no event-loop dependency and exact control over what happens when a peer dies (the
/// original's failure mode).
package enum Socket {
    /// The only address keiji ever binds or connects to: the bus must not be reachable from the network.
    static let loopback = "127.0.0.1"

    /// `SOCK_STREAM | SOCK_CLOEXEC`. Close-on-exec matters: the scheduler spawns task processes, and a
    /// leaked bus socket in a long-running task would keep a dead scheduler's connection "open".
    static var streamType: Int32 {
        #if os(Linux)
        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        SOCK_STREAM
        #endif
    }

    /// `send` flags: never raise SIGPIPE (a peer that went away must be an error code, not a dead process).
    static var sendFlags: Int32 {
        #if os(Linux)
        Int32(MSG_NOSIGNAL)
        #else
        0
        #endif
    }

    package static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// `127.0.0.1:port` as a `sockaddr_in`.
    package static func loopbackAddress(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, loopback, &address.sin_addr)
        return address
    }

    /// A new stream socket for `endpoint`, or a `KeijiError` naming what failed.
    static func makeStream(for endpoint: BusEndpoint, what: String) throws -> Int32 {
        let domain: Int32
        switch endpoint {
        case .unix: domain = AF_UNIX
        case .tcp: domain = AF_INET
        }
        let fd = socket(domain, streamType, 0)
        guard fd >= 0 else { throw KeijiError(.io, "cannot create a socket for \(what): \(errorText())") }
        return fd
    }

    /// Runs `body` with `endpoint`'s address (`sockaddr_in` on loopback, or `sockaddr_un`).
    /// - Throws: if a Unix socket path does not fit `sun_path` (108 bytes with its terminator).
    static func withAddress<T>(_ endpoint: BusEndpoint, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) throws -> T {
        switch endpoint {
        case .tcp(let port):
            var address = loopbackAddress(port: port)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
                throw KeijiError(.invalidSetting, "the bus socket path \(path) is longer than \(capacity - 1) bytes; use a shorter HOME or BUS_TRANSPORT=tcp")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
    }

    /// `struct ucred` (pid, uid, gid), declared here because Glibc only exports it under `_GNU_SOURCE`.
    private struct PeerCredentials {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The uid of the process at the other end of a Unix socket (`SO_PEERCRED`): for an accepted socket the
    /// client, for a connected one the process that created the listener. `nil` if unknown (e.g. TCP).
    static func peerUID(_ fd: Int32) -> uid_t? { peerCredentials(fd)?.uid }

    /// The pid of the process at the other end of a Unix socket, as ``peerUID(_:)`` tells its uid.
    static func peerPID(_ fd: Int32) -> pid_t? { peerCredentials(fd)?.pid }

    private static func peerCredentials(_ fd: Int32) -> PeerCredentials? {
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        let soPeerCred: Int32 = 17  // SO_PEERCRED on Linux (asm-generic/socket.h)
        guard getsockopt(fd, SOL_SOCKET, soPeerCred, &credentials, &length) == 0,
              length == socklen_t(MemoryLayout<PeerCredentials>.size)
        else { return nil }
        return credentials
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Small request/reply lines must not wait for Nagle's algorithm (a no-op error on Unix sockets).
    static func setNoDelay(_ fd: Int32) {
        setOption(fd, Int32(IPPROTO_TCP), Int32(TCP_NODELAY), 1)
    }

    /// Bounds a blocking `recv` (`SO_RCVTIMEO`) or `send` (`SO_SNDTIMEO`); `nil` waits forever.
    package static func setTimeout(_ fd: Int32, _ option: Int32, _ timeout: Duration?) {
        var value = timeval()
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            value.tv_sec = Int(max(0, seconds))
            value.tv_usec = Int(max(0, attoseconds) / 1_000_000_000_000)
            if value.tv_sec == 0 && value.tv_usec == 0 { value.tv_usec = 1000 }
        }
        _ = setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The local port a socket is bound to (what port 0 turned into).
    static func localPort(_ fd: Int32) -> UInt16? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? UInt16(bigEndian: address.sin_port) : nil
    }

    static func closeRetryingNothing(_ fd: Int32) {
        // close(2) must not be retried on EINTR on Linux: the descriptor is already released.
        _ = Glibc.close(fd)
    }
}
