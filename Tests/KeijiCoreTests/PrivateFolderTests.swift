import Foundation
import Testing

@testable import KeijiCore
import KeijiTestSupport

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `~/.keiji` and the folders keiji writes in are the user's alone (``PrivateFolder``): an existing one others may
/// write in was taken as it was, and another user could swap a task's log for a link.
struct PrivateFolderTests {
    func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test func aSystemFolderOthersCanWriteInIsMadePrivateAndSaidOnce() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        try FileManager.default.createDirectory(atPath: workspace.logsDirectory, withIntermediateDirectories: true)
        chmod(workspace.systemRoot, 0o777)
        chmod(workspace.logsDirectory, 0o1777)
        var said: [String] = []
        try workspace.createSystemDirectories { said.append($0) }
        #expect(said == ["\(workspace.systemRoot) was mode 0777, writable by others: made 0700",
                         "\(workspace.logsDirectory) was mode 1777, writable by others: made 0700"])
        #expect(mode(workspace.systemRoot) == 0o700 && mode(workspace.logsDirectory) == 0o700 && mode(workspace.runErrorDirectory) == 0o700)
        chmod(workspace.journalDirectory, 0o750)  // no one else can write in it: left as it is
        said = []
        try workspace.createSystemDirectories { said.append($0) }
        #expect(said.isEmpty && mode(workspace.journalDirectory) == 0o750, "\(said)")
    }

    /// The runs' folder is emptied at each start, and a run can put a link in its place: the link is replaced by a
    /// folder and said, never followed (its target was made 0700, then emptied of its `.error` files).
    @Test func aLinkInPlaceOfTheRunsFolderIsReplacedNotFollowed() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        try workspace.createSystemDirectories()
        let target = home.path + "/elsewhere"
        try FileSystem.createDirectory(target)
        chmod(target, 0o777)
        try FileManager.default.removeItem(atPath: workspace.runErrorDirectory)
        try FileManager.default.createSymbolicLink(atPath: workspace.runErrorDirectory, withDestinationPath: target)
        var said: [String] = []
        try workspace.createSystemDirectories { said.append($0) }
        #expect(said == ["\(workspace.runErrorDirectory) was a symbolic link (→ \(target), left as it was), not a folder: replaced by one"])
        #expect(mode(target) == 0o777, "the target is left as it was")
        var info = stat()
        #expect(lstat(workspace.runErrorDirectory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && info.st_mode & 0o7777 == 0o700)
    }

    @Test(.enabled(if: NeededUnderCI.runs(geteuid() == 0), "needs root to give a folder to another user"))
    func aSystemFolderAnotherUserOwnsIsRefused() throws {
        try #require(geteuid() == 0, "needs root to give a folder to another user (under CI=true it runs, and fails, without it)")
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        try workspace.createSystemDirectories()
        #expect(chown(workspace.journalDirectory, 65534, 65534) == 0)
        #expect { try workspace.createSystemDirectories() } throws: { error in
            let message = (error as? KeijiError)?.message ?? ""
            return message.hasPrefix("\(workspace.journalDirectory) belongs to ") && message.contains("uid 65534")
                && message.hasSuffix(", not to you: keiji keeps its files only in folders of your own")
        }
    }
}

/// The folders of `~/keiji` down to a task's folder hold what keiji runs as their owner (``Workspace/checkFolders(downTo:)``):
/// one another user could write in let them make it run their code. They are refused, named with the fix, and left
/// as they are.
struct TaskFolderTrustTests {
    func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test func aTaskFolderOrOneAboveItOthersCanWriteInIsRefusedAndLeftAsItIs() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        let folder = workspace.taskDirectory(try TaskName("t"))
        try FileSystem.createDirectory(folder, mode: 0o755)
        try workspace.checkFolders(downTo: folder)
        for (path, bad) in [(workspace.root, mode_t(0o777)), (workspace.tasksDirectory, 0o1777), (folder, 0o757)] {
            chmod(path, bad)
            #expect { try workspace.checkFolders(downTo: folder) } throws: { error in
                (error as? KeijiError)?.message == "\(path) is mode \(String(format: "%04o", bad)), writable by others, who could make "
                    + "keiji run their code as you: chmod go-w \(path)"
            }
            #expect(mode(path) == bad, "left as it was")
            chmod(path, 0o755)
        }
        try workspace.checkFolders(downTo: folder)
        // Not there yet (a create makes it), or outside ~/keiji: nothing to refuse.
        try workspace.checkFolders(downTo: workspace.taskDirectory(try TaskName("new")))
        try workspace.checkFolders(downTo: "/tmp")
    }

    @Test(.enabled(if: NeededUnderCI.runs(geteuid() == 0), "needs root to give a folder to another user"))
    func aTaskFolderAnotherUserOwnsIsRefused() throws {
        try #require(geteuid() == 0, "needs root to give a folder to another user (under CI=true it runs, and fails, without it)")
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        let folder = workspace.taskDirectory(try TaskName("t"))
        try FileSystem.createDirectory(folder, mode: 0o755)
        #expect(chown(folder, 65534, 65534) == 0)
        #expect { try workspace.checkFolders(downTo: folder) } throws: { error in
            let message = (error as? KeijiError)?.message ?? ""
            return message.hasPrefix("\(folder) belongs to ") && message.contains("uid 65534")
                && message.hasSuffix(", not to you: keiji runs only what is in folders of your own (chown it, or move the task)")
        }
    }

    /// Debian's user private groups: under `USERGROUPS_ENAB` a user's umask is 002, so every folder they make is
    /// group-writable, and only they are in that group. Refusing those refused every task of such a user.
    @Test func aFolderWritableByTheOwnersOwnGroupPassesAndOneOfAGroupWithOthersIsRefused() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        let folder = workspace.taskDirectory(try TaskName("t"))
        try FileSystem.createDirectory(folder, mode: 0o775)
        chmod(folder, 0o775)
        let ownGroupIsPrivate = Self.groupIsTheOwners(getegid(), owner: geteuid())
        if ownGroupIsPrivate {
            try workspace.checkFolders(downTo: folder)
        } else {
            #expect(throws: KeijiError.self) { try workspace.checkFolders(downTo: folder) }
        }
        // nogroup is nobody's primary group: with anyone but the owner in it, group-writable is refused.
        guard geteuid() == 0 else { return }
        #expect(chown(folder, geteuid(), 65534) == 0)
        #expect { try workspace.checkFolders(downTo: folder) } throws: { error in
            let message = (error as? KeijiError)?.message ?? ""
            return message.hasPrefix("\(folder) is mode 0775, writable by its group ") && message.contains("(gid 65534), which has other members")
                && message.hasSuffix("chmod go-w \(folder)")
        }
    }

    @Test func aGroupIsPrivateWhenItsOnlyMemberIsTheOwner() {
        #expect(PrivateGroup.isPrivate(owner: 1000, ownerName: "ann", primaryMembers: [1000], listed: []))
        #expect(PrivateGroup.isPrivate(owner: 1000, ownerName: "ann", primaryMembers: [], listed: ["ann"]))
        #expect(PrivateGroup.isPrivate(owner: 1000, ownerName: "ann", primaryMembers: [1000], listed: ["ann"]))
        #expect(!PrivateGroup.isPrivate(owner: 1000, ownerName: "ann", primaryMembers: [1000, 1001], listed: []), "another's primary group too")
        #expect(!PrivateGroup.isPrivate(owner: 1000, ownerName: "ann", primaryMembers: [1000], listed: ["bob"]), "another listed")
        #expect(!PrivateGroup.isPrivate(owner: 1000, ownerName: "ann", primaryMembers: [], listed: []), "no member: a program's group")
    }

    /// The test's own reading of /etc/passwd and /etc/group (the machines the suite runs on keep their accounts there):
    /// whether `gid`'s only member is `owner`.
    static func groupIsTheOwners(_ gid: gid_t, owner: uid_t) -> Bool {
        func records(_ path: String) -> [[Substring]] {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false) }
        }
        let accounts = records("/etc/passwd").filter { $0.count >= 4 }
        guard let ownerName = accounts.first(where: { $0[2] == "\(owner)" })?[0],
              let group = records("/etc/group").first(where: { $0.count >= 4 && $0[2] == "\(gid)" }) else { return false }
        let primary = accounts.filter { $0[3] == "\(gid)" }.map { $0[0] }
        let listed = group[3].split(separator: ",")
        return (primary + listed).allSatisfy { $0 == ownerName } && !(primary + listed).isEmpty
    }
}
