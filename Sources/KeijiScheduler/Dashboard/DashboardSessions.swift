import Foundation
import Synchronization

/// The dashboard's logins, in memory only (a scheduler restart logs everyone out): a random session id in an
/// `HttpOnly; SameSite=Strict` cookie, and a per-session CSRF token every form posts back.
public final class DashboardSessions: Sendable {
    public struct Session: Sendable {
        public var csrfToken: String
        public var expiresAt: ContinuousClock.Instant
    }

    /// How long a login lasts: a working day, then the dashboard token again.
    public static let lifetime: Duration = .seconds(12 * 3600)
    public static let cookieName = "keiji_session"

    private let token: String
    private let sessions = Mutex<[String: Session]>([:])

    public init(token: String) { self.token = token }

    /// A new session id if `offered` is the dashboard token; nil otherwise.
    public func logIn(offering offered: String) -> String? {
        guard Self.constantTimeEqual(offered.trimmingCharacters(in: .whitespacesAndNewlines), token) else { return nil }
        let id = Self.randomHex(bytes: 32)
        let session = Session(csrfToken: Self.randomHex(bytes: 32), expiresAt: .now + Self.lifetime)
        sessions.withLock { all in
            let now = ContinuousClock.now
            all = all.filter { $0.value.expiresAt > now }
            all[id] = session
        }
        return id
    }

    /// The live session named by the request's cookie header, if any.
    public func session(cookieHeader: String?) -> Session? {
        guard let id = Self.cookie(Self.cookieName, in: cookieHeader) else { return nil }
        return sessions.withLock { all in
            guard let session = all[id] else { return nil }
            guard session.expiresAt > .now else {
                all[id] = nil
                return nil
            }
            return session
        }
    }

    public static func setCookie(_ id: String) -> String {
        "\(cookieName)=\(id); HttpOnly; SameSite=Strict; Path=/; Max-Age=\(Int(lifetime.components.seconds))"
    }

    static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
        }
        return nil
    }

    /// Equal strings, in time that does not depend on where a wrong guess differs.
    public static func constantTimeEqual(_ offered: String, _ expected: String) -> Bool {
        let a = Array(offered.utf8), b = Array(expected.utf8)
        guard !b.isEmpty, a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    static func randomHex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }
}
