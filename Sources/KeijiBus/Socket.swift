import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The handful of POSIX socket calls the bus needs, loopback only. Plain sockets rather than a networking
/// framework: the bus is a few hundred lines of line-oriented TCP on 127.0.0.1, and keeping it on raw
/// syscalls means no event-loop dependency and exact control over what happens when a peer dies (the
/// original's failure mode).
enum Socket {
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

    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// `127.0.0.1:port` as a `sockaddr_in`.
    static func loopbackAddress(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, loopback, &address.sin_addr)
        return address
    }

    /// A new TCP socket, or a `KeijiError` naming what failed.
    static func makeStream(for what: String) throws -> Int32 {
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { throw KeijiError(.io, "cannot create a socket for \(what): \(errorText())") }
        return fd
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Small request/reply lines must not wait for Nagle's algorithm.
    static func setNoDelay(_ fd: Int32) {
        setOption(fd, Int32(IPPROTO_TCP), Int32(TCP_NODELAY), 1)
    }

    /// Bounds a blocking `recv` (`SO_RCVTIMEO`) or `send` (`SO_SNDTIMEO`); `nil` waits forever.
    static func setTimeout(_ fd: Int32, _ option: Int32, _ timeout: Duration?) {
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
