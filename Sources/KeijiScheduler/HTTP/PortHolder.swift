import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Who listens on a TCP port that keiji could not bind, from `/proc/net/tcp` and `/proc/net/tcp6` (any user may read
/// them, and they give each listening socket's uid). Any local user can listen on a loopback port: when the scheduler
/// finds METRICS_PORT or DASHBOARD_PORT taken, the owner must learn whether the server there is another user's, which
/// would receive whatever token a scrape or a login sends it.
enum PortHolder {
    static let tables = ["/proc/net/tcp", "/proc/net/tcp6"]

    /// The uids of the sockets listening on `port` (on any address), in the order the tables list them, once each.
    static func listeningUIDs(port: UInt16, tables: [String] = tables) -> [uid_t] {
        var uids: [uid_t] = []
        for table in tables {
            // Read to its end: its size reads as 0 and each read gives one page, of which String(contentsOfFile:)
            // took only the first (about 27 sockets of a busy host).
            guard case .success(let bytes) = RegularFile.read(table, limit: 64 << 20) else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            for uid in listeningUIDs(port: port, in: text) where !uids.contains(uid) { uids.append(uid) }
        }
        return uids
    }

    /// `/proc/net/tcp{,6}` text: a heading, then `sl local_address rem_address st … uid …` with the local address as
    /// `<hex address>:<hex port>` and `st` 0A for a listening socket.
    static func listeningUIDs(port: UInt16, in table: String) -> [uid_t] {
        table.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 7, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":"),
                  UInt16(fields[1][fields[1].index(after: colon)...], radix: 16) == port else { return nil }
            return uid_t(fields[7])
        }
    }

    /// Words for the warning of a port that is taken: who holds it, and whether to trust it; nil when no listener
    /// is found (it closed meanwhile, or it is in another network namespace).
    static func describe(port: UInt16, tables: [String] = tables, ownUID: uid_t = getuid()) -> String? {
        let uids = listeningUIDs(port: port, tables: tables)
        guard !uids.isEmpty else { return nil }
        let others = uids.filter { $0 != ownUID }
        let named = (others.isEmpty ? uids : others).map { "uid \($0)" + (userName($0).map { " (\($0))" } ?? "") }.joined(separator: ", ")
        if others.isEmpty { return "held by a process of this user (\(named)): another keiji or another server of yours (ss -ltnp)" }
        return "held by \(named), another user's process: do not give it keiji's tokens, and choose another port"
    }

    static func userName(_ uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }
}
