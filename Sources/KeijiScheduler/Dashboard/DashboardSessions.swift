import Foundation
import KeijiBus
import Synchronization

/// The dashboard's logins, in memory only (a scheduler restart logs everyone out): a random session id that lives
/// in the path of every page after the login (`/s/<id>/…`, ``Session/base``), and a per-session CSRF token every
/// form posts back.
///
/// Not a cookie: browsers send a cookie for 127.0.0.1 to every port of it, and any local user may listen on one,
/// so a cookie went to whichever server on the machine the owner's browser visited next, and replayed with curl it
/// was the owner's session. A path is sent only to the server that served the page (every response carries
/// `Referrer-Policy: no-referrer`, so no link or request passes it on).
public final class DashboardSessions: Sendable {
    public struct Session: Sendable {
        public var id: String
        public var csrfToken: String
        public var expiresAt: ContinuousClock.Instant

        /// Where this session's pages are: every link and form of a page is relative to it (`<base href>`).
        public var base: String { "/s/\(id)/" }
    }

    /// How long a login lasts: a working day, then the dashboard token again.
    public static let lifetime: Duration = .seconds(12 * 3600)

    private let token: String
    private let sessions = Mutex<[String: Session]>([:])

    public init(token: String) { self.token = token }

    /// A new session if `offered` is the dashboard token; nil otherwise.
    public func logIn(offering offered: String) -> Session? {
        guard Self.constantTimeEqual(offered.trimmingCharacters(in: .whitespacesAndNewlines), token) else { return nil }
        let session = Session(id: TokenFile.randomHex(bytes: 32), csrfToken: TokenFile.randomHex(bytes: 32), expiresAt: .now + Self.lifetime)
        sessions.withLock { all in
            let now = ContinuousClock.now
            all = all.filter { $0.value.expiresAt > now }
            all[session.id] = session
        }
        return session
    }

    /// The live session with this id, if any.
    public func session(id: String) -> Session? {
        sessions.withLock { all in
            guard let session = all[id] else { return nil }
            guard session.expiresAt > .now else {
                all[id] = nil
                return nil
            }
            return session
        }
    }

    /// Ends the session: its id opens nothing any more.
    public func logOut(id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// Equal strings, in time that does not depend on where a wrong guess differs.
    public static func constantTimeEqual(_ offered: String, _ expected: String) -> Bool {
        let a = Array(offered.utf8), b = Array(expected.utf8)
        guard !b.isEmpty, a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}
