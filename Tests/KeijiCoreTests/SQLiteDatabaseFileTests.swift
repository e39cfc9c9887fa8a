import Foundation
import Testing

@testable import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

struct SQLiteDatabaseFileTests {
    /// A view file that is a link: the file it points to keeps its mode (`chmod` by path made a 0644 file elsewhere 0600).
    @Test func aLinkedDatabaseFileLeavesItsTargetsModeAlone() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let target = home.path + "/elsewhere.db"
        let link = home.path + "/keiji.db"
        #expect(FileManager.default.createFile(atPath: target, contents: Data(), attributes: [.posixPermissions: 0o644]))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        _ = try SQLiteDatabase(path: link)
        var info = stat()
        #expect(stat(target, &info) == 0 && info.st_mode & 0o777 == 0o644)
        // A file of its own is made 0600.
        let own = home.path + "/own.db"
        #expect(FileManager.default.createFile(atPath: own, contents: Data(), attributes: [.posixPermissions: 0o644]))
        _ = try SQLiteDatabase(path: own)
        #expect(stat(own, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }
}
