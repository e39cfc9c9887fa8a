import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// keiji's folders under `~/.keiji` are the user's alone. One another user can write in (a restore, a `mkdir` under
/// umask 000) let them swap a task's log for a link to a file they chose, or take the bus token; an existing folder
/// was taken as it was, and `keiji init` said "mode 0700" of a `drwxrwxrwx` one. The folders of `~/keiji` that hold
/// what keiji runs are checked too (``checkTrusted(_:)``), but left to their owner to change.
public enum PrivateFolder {
    /// Creates `path` (mode 0700, with its parents) or checks the folder there, by a descriptor so that what is
    /// checked is what is changed: one owned by another user is refused; one the group or others may write in is
    /// made 0700, and the line saying so is returned. With `replacingLink` (a folder whose files keiji removes, which a
    /// run can swap for a link: it is the same user) a symbolic link there is removed, never followed, and a folder
    /// made in its place; the line says so.
    public static func prepare(_ path: String, replacingLink: Bool = false) throws -> String? {
        var replaced: String?
        if replacingLink, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
            guard unlink(path) == 0 || errno == ENOENT else {
                throw KeijiError(.io, "cannot remove the link \(path): \(String(cString: strerror(errno)))")
            }
            replaced = "\(path) was a symbolic link (→ \(target), left as it was), not a folder: replaced by one"
        }
        try FileSystem.createDirectory(path, mode: 0o700)
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (replacingLink ? O_NOFOLLOW : 0))
        guard fd >= 0 else { throw KeijiError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw KeijiError(.io, "cannot read \(path): \(String(cString: strerror(errno)))") }
        try TrustedFile.requireOwned(info.st_uid, at: path, because: "keiji keeps its files only in folders of your own")
        let mode = info.st_mode & 0o7777
        guard mode & 0o022 != 0 else { return replaced }
        guard fchmod(fd, 0o700) == 0 else { throw KeijiError(.io, "cannot make \(path) private: \(String(cString: strerror(errno)))") }
        return "\(path) was mode \(String(format: "%04o", mode)), writable by others: made 0700"
    }

    /// Checks the folder at `path` (followed) and changes nothing: a task's folder and those above it in `~/keiji` hold
    /// the `.env`, scripts and sources that keiji runs as you, so another user who owns or may write in one (others, or
    /// a group with anyone but you in it; sticky or not) could make it run their code. A group of your own
    /// (``PrivateGroup``: Debian's user private groups, whose umask 002 makes every folder group-writable) may write.
    /// They are the user's own to set, so the refusal names the fix rather than keiji making them 0700. A folder that is
    /// not there passes (what needs it says so). The files in them are held to the same rule (``TrustedFile``).
    public static func checkTrusted(_ path: String) throws {
        try TrustedFile.requireTrusted(path, because: "keiji runs only what is in folders of your own (chown it, or move the task)")
    }

    /// The permission bits of the folder at `path` (followed), as `ls` shows them in octal: what `keiji init` says.
    public static func mode(of path: String) -> String? {
        var info = stat()
        return stat(path, &info) == 0 ? String(format: "%04o", info.st_mode & 0o7777) : nil
    }
}
