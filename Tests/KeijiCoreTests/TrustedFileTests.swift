import Foundation
import Testing

@testable import KeijiCore
import KeijiTestSupport

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The files keiji reads or runs as their owner from `~/keiji` and `~/.keiji` (``TrustedFile``,
/// ``Workspace/checkProgram(_:runIn:)``): one another user owns or may write let them make it run their code, though
/// its folder is the owner's alone. They are refused as such folders are, named with the fix, and left as they are.
struct TrustedFileTests {
    /// A task folder of `home`'s workspace, mode 0755, holding `run.sh` (mode 0755).
    func taskWithScript(_ home: TemporaryHome) throws -> (folder: String, script: String) {
        let folder = home.workspace.taskDirectory(try TaskName("t"))
        try FileSystem.createDirectory(folder, mode: 0o755)
        let script = folder + "/run.sh"
        try FileSystem.writeAtomically(Data("#!/bin/sh\n".utf8), to: script, mode: 0o755)
        return (folder, script)
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test func aProgramInTheWorkspaceOthersCanWriteIsRefusedAndLeftAsItIs() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        let (folder, script) = try taskWithScript(home)
        for program in ["./run.sh", "run.sh/../run.sh", script] { try workspace.checkProgram(program, runIn: folder) }
        for bad in [mode_t(0o757), 0o777, 0o4777] {
            chmod(script, bad)
            for program in ["./run.sh", script] {
                #expect { try workspace.checkProgram(program, runIn: folder) } throws: { error in
                    (error as? KeijiError)?.message == "\(script) is mode \(String(format: "%04o", bad)), writable by others, who could make "
                        + "keiji run their code as you: chmod go-w \(script)"
                }
            }
            #expect(mode(script) == bad, "left as it was")
        }
        // A tool elsewhere in ~/keiji: its folders are checked too.
        let tools = workspace.root + "/bin"
        try FileSystem.createDirectory(tools, mode: 0o755)
        try FileSystem.writeAtomically(Data("#!/bin/sh\n".utf8), to: tools + "/tool", mode: 0o755)
        try workspace.checkProgram(tools + "/tool", runIn: folder)
        chmod(tools, 0o777)
        #expect { try workspace.checkProgram(tools + "/tool", runIn: folder) } throws: { error in
            (error as? KeijiError)?.message.hasPrefix("\(tools) is mode 0777, writable by others") == true
        }
        // A built task's binary under ~/.keiji.
        try FileSystem.createDirectory(workspace.executablesDirectory, mode: 0o700)
        let binary = workspace.executable(for: try TaskName("t"))
        try FileSystem.writeAtomically(Data("#!/bin/sh\n".utf8), to: binary, mode: 0o700)
        try workspace.checkProgram(binary, runIn: folder)
        chmod(binary, 0o722)
        #expect { try workspace.checkProgram(binary, runIn: folder) } throws: { error in
            (error as? KeijiError)?.message.hasPrefix("\(binary) is mode 0722, writable by others") == true
        }
    }

    /// A link is judged by where it leads: to a writable file of the workspace it is refused; to a system program it is
    /// the system's, as that program named directly is (as are a name looked up on PATH and a `..` out of the workspace).
    @Test func aSystemProgramIsNotJudgedHoweverItIsNamed() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let workspace = home.workspace
        let (folder, script) = try taskWithScript(home)
        #expect(symlink("/bin/sh", folder + "/shell") == 0)
        #expect(symlink(script, folder + "/script") == 0)
        // Outside the workspace, even one anyone may write is not keiji's to judge (under root, /bin/sh is the caller's).
        let outside = home.path + "/elsewhere"
        try FileSystem.writeAtomically(Data("#!/bin/sh\n".utf8), to: outside, mode: 0o777)
        chmod(outside, 0o777)
        #expect(symlink(outside, folder + "/outside") == 0)
        for program in ["/bin/sh", "sh", "./shell", "../../../../../../../../bin/sh", "./script", outside, "./outside", "../../../elsewhere"] {
            try workspace.checkProgram(program, runIn: folder)
        }
        chmod(script, 0o777)
        #expect { try workspace.checkProgram("./script", runIn: folder) } throws: { error in
            (error as? KeijiError)?.message.hasPrefix("\(script) is mode 0777, writable by others") == true
        }
        try workspace.checkProgram("./missing", runIn: folder)  // not there: the start says so
    }

    @Test(.enabled(if: NeededUnderCI.runs(geteuid() == 0), "needs root to give a file to another user"))
    func aFileAnotherUserOwnsIsRefused() throws {
        try #require(geteuid() == 0, "needs root to give a file to another user (under CI=true it runs, and fails, without it)")
        let home = TemporaryHome()
        defer { home.remove() }
        let (folder, script) = try taskWithScript(home)
        #expect(chown(script, 65534, 65534) == 0)
        for check in [{ try TrustedFile.check(script) }, { try home.workspace.checkProgram("./run.sh", runIn: folder) }] {
            #expect { try check() } throws: { error in
                let message = (error as? KeijiError)?.message ?? ""
                return message.hasPrefix("\(script) belongs to ") && message.contains("uid 65534")
                    && message.hasSuffix(", not to you: keiji runs only files of your own (chown it)")
            }
        }
    }

    /// Debian's user private groups (umask 002) make every file group-writable, with only its owner in the group: such
    /// a file passes, as such a folder does; one of a group with others in it is refused.
    @Test func aFileWritableByTheOwnersOwnGroupPassesAndOneOfAGroupWithOthersIsRefused() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let (folder, script) = try taskWithScript(home)
        chmod(script, 0o775)
        if TaskFolderTrustTests.groupIsTheOwners(getegid(), owner: geteuid()) {
            try TrustedFile.check(script)
            try home.workspace.checkProgram("./run.sh", runIn: folder)
        } else {
            #expect(throws: KeijiError.self) { try TrustedFile.check(script) }
        }
        // nogroup is nobody's primary group: with anyone but the owner in it, group-writable is refused.
        guard geteuid() == 0 else { return }
        #expect(chown(script, geteuid(), 65534) == 0)
        #expect { try home.workspace.checkProgram("./run.sh", runIn: folder) } throws: { error in
            let message = (error as? KeijiError)?.message ?? ""
            return message.hasPrefix("\(script) is mode 0775, writable by its group ") && message.contains("(gid 65534), which has other members")
                && message.hasSuffix("chmod go-w \(script)")
        }
    }
}
