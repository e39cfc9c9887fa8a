import Foundation

/// The bus's two loopback ports. The defaults are the original's (8005 push, 8006 pull); the environment
/// overrides them so tests, and a second keiji on the same machine, can run side by side. The bus, the CLI
/// and the scheduler all call these, so all three agree without a config file.
public enum BusPorts {
    public static let defaultPush: UInt16 = 8005
    public static let defaultPull: UInt16 = 8006
    public static let pushVariable = "KEIJI_BUS_PUSH_PORT"
    public static let pullVariable = "KEIJI_BUS_PULL_PORT"

    /// Where the CLI sends commands: `KEIJI_BUS_PUSH_PORT`, default 8005.
    public static func push() -> UInt16 {
        port(pushVariable, default: defaultPush, environment: ProcessInfo.processInfo.environment)
    }

    /// Where the scheduler connects: `KEIJI_BUS_PULL_PORT`, default 8006.
    public static func pull() -> UInt16 {
        port(pullVariable, default: defaultPull, environment: ProcessInfo.processInfo.environment)
    }

    /// A port from the environment. An unset, empty or unusable value (not a number, 0, above 65535) gives
    /// the default rather than an error: every component must fall back to the same port, and a typo that
    /// made one of them pick a random or no port would split the CLI from the bus silently.
    static func port(_ variable: String, default fallback: UInt16, environment: [String: String]) -> UInt16 {
        guard let text = environment[variable]?.trimmingCharacters(in: .whitespaces),
              let value = UInt16(text), value != 0
        else { return fallback }
        return value
    }
}
