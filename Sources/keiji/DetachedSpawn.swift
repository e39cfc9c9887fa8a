import CSpawn
import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Starts a program detached from this CLI: a session of its own (no terminal; no signal meant for the caller's
/// group reaches it, and a run's group kill does not), stdin from /dev/null, no descriptor of the CLI's but those
/// given, and every signal at its default and unblocked (the CLI's async threads block some, and a blocked or
/// ignored SIGTERM is inherited across exec: a service so started could not be stopped). Its environment is the
/// CLI's (or `environment`) without a run's variables (``RunVariables``): started from a task, it must not count as
/// that run's.
enum DetachedSpawn {
    /// `standardOutput` and `standardError`: files appended to (created 0600; a link is not followed), or /dev/null when nil; `descriptor3`
    /// becomes its descriptor 3; `directory`, when given, its working directory. Returns its pid, or throws
    /// `cannot start <name>: <reason>`.
    static func spawn(_ path: String, arguments: [String], standardOutput: String?, standardError: String?,
                      descriptor3: Int32? = nil, environment: [String]? = nil, directory: String? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, file) in [(Int32(1), standardOutput), (2, standardError)] {
            if let file {
                posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o600)
            } else {
                posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
            }
        }
        if let descriptor3 { posix_spawn_file_actions_adddup2(&actions, descriptor3, 3) }
        if let directory { _ = keiji_spawn_file_actions_chdir(&actions, directory) }
        // Nothing else the CLI has open (a caller's pipes, say) may stay open for the process's lifetime.
        _ = keiji_spawn_file_actions_closefrom(&actions, descriptor3 == nil ? 3 : 4)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        let setsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc)
        posix_spawnattr_setflags(&attributes, Int16(setsid | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = withoutRunVariables(environment ?? ownEnvironment()).map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard code == 0 else { throw CLIError("cannot start \((path as NSString).lastPathComponent): \(String(cString: strerror(code)))") }
        return pid
    }

    /// This process's environment.
    private static func ownEnvironment() -> [String] {
        var entries: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            entries.append(String(cString: entry))
            cursor += 1
        }
        return entries
    }

    /// `entries` (`NAME=value`) without the variables of the run they may come from.
    private static func withoutRunVariables(_ entries: [String]) -> [String] {
        entries.filter { !RunVariables.all.contains(String($0.prefix { $0 != "=" })) }
    }
}
