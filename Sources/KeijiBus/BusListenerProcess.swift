#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Which process listens on a bus's Unix socket, for `keiji system` to find a bus whose pid file is gone: it still
/// listens there, and `SO_PEERCRED` of a connection names the process that made the listener. The connection is
/// closed before any handshake, which the bus takes as a client gone (as it does the stale-socket probe of a
/// starting bus). Nil for TCP, which carries no such credentials, and when nothing listens.
public enum BusListenerProcess {
    public static func pid(listeningOn path: String) -> pid_t? {
        guard let connection = try? LineConnection.connect(to: .unix(path: path), what: "probe") else { return nil }
        defer { connection.close() }
        return Socket.peerPID(connection.fd)
    }
}
