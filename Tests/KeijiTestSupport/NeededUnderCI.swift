import Foundation

/// Tests that need what a machine may lack (root, a tool) skip without it, except under `CI=true`: there they run
/// and fail, as the PostgreSQL tests do, so a CI that lost it says so instead of passing with fewer tests.
public enum NeededUnderCI {
    public static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// Whether a test that needs `met` runs: when it holds, and always under CI (its body then requires `met`).
    public static func runs(_ met: Bool) -> Bool { met || isCI }

    /// `/usr/bin/perl` (from perl-base, essential on Debian) for tests that need a syscall the shell has not.
    public static var hasPerl: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/perl") }

    /// Root and `/usr/bin/setpriv`, to run a program as `nobody` (65534).
    public static var canRunAsNobody: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") }
}
