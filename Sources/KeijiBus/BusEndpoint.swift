import Foundation
import KeijiCore

/// Where one side of the bus listens: a Unix socket in the user's `~/.keiji` (the default) or a loopback
/// TCP port (opt-in, the seed's 8005/8006).
///
/// The Unix socket is the default because it is per user by construction: it lives in a 0700 directory, so
/// two users (or two HOMEs) each get their own bus and never fight over a port, and the peer's uid is
/// checked on both ends (`SO_PEERCRED`). TCP on 127.0.0.1 is shared by every local user; there the handshake
/// (``BusHandshake``) is what tells our bus from someone else's listener.
public enum BusEndpoint: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    /// `127.0.0.1:port`; port 0 asks the kernel for a free one (tests).
    case tcp(port: UInt16)

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let port): "\(Socket.loopback):\(port)"
        }
    }
}

/// The bus's two endpoints, as the bus, the CLI and the scheduler all compute them from the same settings.
public struct BusEndpoints: Sendable, Equatable {
    /// Where the CLI sends commands.
    public var push: BusEndpoint
    /// Where the scheduler connects for commands.
    public var pull: BusEndpoint

    public static let pushVariable = "KEIJI_BUS_PUSH_PORT"
    public static let pullVariable = "KEIJI_BUS_PULL_PORT"

    public init(push: BusEndpoint, pull: BusEndpoint) {
        self.push = push
        self.pull = pull
    }

    /// From `settings.conf` (`BUS_TRANSPORT`, `BUS_PUSH_PORT`, `BUS_PULL_PORT`; defaults when `settings` is
    /// nil, i.e. before `keiji init`). `KEIJI_BUS_PUSH_PORT` / `KEIJI_BUS_PULL_PORT` in the environment
    /// override the ports and imply TCP, so tests can run many keijis side by side without settings files.
    public static func resolve(_ workspace: Workspace, settings: Settings?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> BusEndpoints {
        let settings = settings ?? Settings()
        let pushOverride = port(environment[pushVariable]), pullOverride = port(environment[pullVariable])
        if pushOverride != nil || pullOverride != nil || settings.busTransport == .tcp {
            return BusEndpoints(push: .tcp(port: pushOverride ?? settings.busPushPort),
                                pull: .tcp(port: pullOverride ?? settings.busPullPort))
        }
        return BusEndpoints(push: .unix(path: workspace.busPushSocket), pull: .unix(path: workspace.busPullSocket))
    }

    /// A port from the environment, or nil if unset or unusable (not a number, 0, above 65535): an unusable
    /// override falls back to the settings rather than splitting the CLI from the bus.
    static func port(_ text: String?) -> UInt16? {
        guard let text = text?.trimmingCharacters(in: .whitespaces), let value = UInt16(text), value != 0 else { return nil }
        return value
    }
}
