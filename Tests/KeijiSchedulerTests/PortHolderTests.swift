import Foundation
import KeijiTestSupport
import Testing

@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Who holds a port the scheduler could not bind, from `/proc/net/tcp` and `tcp6`: another user's listener on
/// METRICS_PORT or DASHBOARD_PORT would receive the token of every scrape or login, and the warning must say so.
struct PortHolderTests {
    static let heading = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

    /// A table in a temporary file: `rows` of (local address, state, uid).
    static func table(_ rows: [(String, String, uid_t)]) throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/port-holder-\(UUID().uuidString)"
        let text = heading + rows.enumerated().map { index, row in
            "   \(index): \(row.0) 00000000:0000 \(row.1) 00000000:00000000 00:00000000 00000000  \(row.2)        0 \(1000 + index) 1 0000000000000000 100 0 0 10 0\n"
        }.joined()
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func anotherUsersListenerIsNamedAsOneNotToTrust() throws {
        // 9464 = 0x24F8: nobody listens on 127.0.0.1 in tcp, root has a connection from it (not listening), and
        // nobody also on :: in tcp6; a listener on 9465 is another port.
        let tcp = try Self.table([("0100007F:24F8", "0A", 65534), ("0100007F:24F8", "01", 0), ("0100007F:24F9", "0A", 1001)])
        let tcp6 = try Self.table([("00000000000000000000000000000000:24F8", "0A", 65534)])
        defer { unlink(tcp); unlink(tcp6) }
        #expect(PortHolder.listeningUIDs(port: 9464, tables: [tcp, tcp6]) == [65534])
        let name = PortHolder.userName(65534).map { " (\($0))" } ?? ""
        #expect(PortHolder.describe(port: 9464, tables: [tcp, tcp6], ownUID: 0)
                == "held by uid 65534\(name), another user's process: do not give it keiji's tokens, and choose another port")
        #expect(PortHolder.describe(port: 9464, tables: [tcp, tcp6], ownUID: 65534)?.hasPrefix("held by a process of this user (uid 65534") == true)
        #expect(PortHolder.describe(port: 9466, tables: [tcp, tcp6], ownUID: 0) == nil, "no listener found: nothing said")
        #expect(PortHolder.describe(port: 9464, tables: ["/nonexistent"], ownUID: 0) == nil)
    }

    @Test func aRealListenerIsFoundWithItsUID() throws {
        let (squatter, port) = try LoopbackSocket.listening()
        defer { close(squatter) }
        #expect(PortHolder.listeningUIDs(port: port) == [getuid()])
        #expect(PortHolder.describe(port: port)?.hasPrefix("held by a process of this user (uid \(getuid())") == true)
    }

    /// `/proc/net/tcp` reads as 0 bytes long and the kernel gives it a page a read: `String(contentsOfFile:)` took
    /// the first page only, about 27 sockets, and a busy host's squatter (the whole test suite's, here) was not found.
    @Test func aListenerPastTheTablesFirstPageIsFound() throws {
        let listeners = try (0..<120).map { _ in try LoopbackSocket.listening() }
        defer { for (fd, _) in listeners { close(fd) } }
        let missed = listeners.filter { PortHolder.listeningUIDs(port: $0.port) != [getuid()] }.map(\.port)
        #expect(missed.isEmpty, "\(missed.count) of \(listeners.count) listeners not found: \(missed.prefix(10))")
    }
}
