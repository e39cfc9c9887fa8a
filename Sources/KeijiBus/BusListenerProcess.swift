#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Which process listens on a bus's Unix socket, for `keiji system` to find a bus whose pid file is gone: it still
/// listens there, and `SO_PEERCRED` of a connection names the process that made the listener. The connection is
/// closed before any handshake, which the bus takes as a client gone (as it does the stale-socket probe of a
/// starting bus). Nil for TCP, which carries no such credentials, and when nothing listens.
public enum BusListenerProcess {
    public static func pid(listeningOn path: String) -> pid_t? {
        let endpoint = BusEndpoint.unix(path: path)
        guard let fd = try? Socket.makeStream(for: endpoint, what: "probe") else { return nil }
        defer { Socket.closeRetryingNothing(fd) }
        // A wedged bus whose backlog is full would hold the connect, and `--status` or `--stop` with it, for good.
        var bound = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
        guard (try? Socket.withAddress(endpoint, { Glibc.connect(fd, $0, $1) })) == 0 else { return nil }
        return Socket.peerPID(fd)
    }
}
