import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The files keiji reads or runs as you from your own folders: a task's `.env` (it becomes the run's environment, so a
/// `PATH=` or `LD_PRELOAD=` there runs what its writer chose), the program a run execs from `~/keiji` or `~/.keiji`, and
/// the sources `task --build` compiles. A trusted folder (``PrivateFolder/checkTrusted(_:)``) stops another user
/// replacing them, not writing in them: the same rule is asked of each file, and it too is left to its owner to change.
public enum TrustedFile {
    /// Checks the file at `path` (followed) and changes nothing: refused when another user owns it or may write it
    /// (others, or a group with anyone but you in it; a group of your own passes, ``PrivateGroup``). A file that is not
    /// there passes (what needs it says so).
    public static func check(_ path: String) throws {
        try requireTrusted(path, because: ofYourOwn)
    }

    /// ``check(_:)`` of a file already `stat`ed (a caller that keeps its owner, group and mode need not ask again).
    public static func check(owner: uid_t, group: gid_t, mode: mode_t, at path: String) throws {
        try requireTrusted(owner: owner, group: group, mode: mode, at: path, because: ofYourOwn)
    }

    /// How a file's refusal ends.
    private static let ofYourOwn = "keiji runs only files of your own (chown it)"

    /// The rule of files and folders alike (``PrivateFolder/checkTrusted(_:)``), of what is at `path` (followed); nothing
    /// there passes. `why` ends the line that refuses another's.
    static func requireTrusted(_ path: String, because why: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw KeijiError(.io, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        try requireTrusted(owner: info.st_uid, group: info.st_gid, mode: info.st_mode, at: path, because: why)
    }

    /// The rule of files and folders alike: owned by you, written by none but you (and your own group). `why` ends the
    /// line that refuses another's.
    static func requireTrusted(owner: uid_t, group: gid_t, mode: mode_t, at path: String, because why: String) throws {
        try requireOwned(owner, at: path, because: why)
        let bits = mode & 0o7777
        let writers = bits & 0o002 != 0 ? "others"
            : bits & 0o020 != 0 && !PrivateGroup.isPrivate(group, to: owner) ? "its group \(groupName(group)), which has other members"
            : nil
        guard let writers else { return }
        throw KeijiError(.io, "\(path) is mode \(String(format: "%04o", bits)), writable by \(writers), who could make keiji run their code "
                         + "as you: chmod go-w \(path)")
    }

    /// Refuses what `owner` owns unless that is you, saying `why`.
    static func requireOwned(_ owner: uid_t, at path: String, because why: String) throws {
        guard owner == geteuid() else { throw KeijiError(.io, "\(path) belongs to \(userName(owner)), not to you: \(why)") }
    }

    /// `name (gid N)`, or `gid N` for a gid with no name.
    private static func groupName(_ gid: gid_t) -> String {
        guard let entry = getgrgid(gid), let name = entry.pointee.gr_name else { return "gid \(gid)" }
        return "\(String(cString: name)) (gid \(gid))"
    }

    /// `name (uid N)`, or `uid N` for a uid with no name.
    private static func userName(_ uid: uid_t) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return "\(String(cString: name)) (uid \(uid))"
    }
}
