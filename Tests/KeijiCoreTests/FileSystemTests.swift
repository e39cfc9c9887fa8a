import Foundation
import Testing

@testable import KeijiCore

struct FileSystemTests {
    /// One `mkdir` when the parent exists, a walk from the root when it does not; new folders get the mode,
    /// folders that exist are left as they are, and a folder that cannot be made is an error naming it.
    /// `keiji init` over a `~/.keiji` that is a file blamed `~/.keiji/db` ("Not a directory"): the file is named.
    @Test func aFileWhereAFolderShouldBeIsNamed() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let file = home.path + "/.keiji"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for path in [file + "/db", file] {
            #expect { try FileSystem.createDirectory(path) } throws: { error in
                (error as? KeijiError)?.message == "cannot create directory \(path): \(file) is not a directory"
            }
        }
    }

    @Test func createDirectoryMakesWhatIsMissingAndKeepsWhatExists() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        func mode(_ path: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
        }
        let deep = home.path + "/a/b/c"
        try FileSystem.createDirectory(deep, mode: 0o700)
        #expect(FileSystem.isDirectory(deep))
        #expect(try mode(home.path + "/a") == 0o700)
        try FileSystem.createDirectory(home.path + "/a/b/d", mode: 0o755)  // parent exists: the one folder
        #expect(try mode(home.path + "/a/b/d") == 0o755)
        #expect(try mode(home.path + "/a/b") == 0o700, "an existing parent keeps its mode")
        try FileSystem.createDirectory(deep, mode: 0o755)  // exists: nothing changes
        #expect(try mode(deep) == 0o700)
        #expect(FileManager.default.createFile(atPath: home.path + "/file", contents: Data()))
        #expect { try FileSystem.createDirectory(home.path + "/file/x") } throws: { "\($0)".contains("\(home.path)/file/x") }
    }
}
