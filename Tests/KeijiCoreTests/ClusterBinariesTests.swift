import Foundation
import Testing

@testable import KeijiCore

/// Swift task binaries in the cluster's database, on the real test server: a file of several parts stored and
/// installed byte for byte, stored again without growing anything, and refused (nothing installed) when a part
/// was changed or lost.
@Suite(.enabled(if: TestPostgres.available, TestPostgres.skipReason))
struct ClusterBinariesTests {
    /// 2.5 MiB of random bytes: three parts, the last one short.
    static let size = ClusterBinaries.partSize * 5 / 2

    /// A random binary in a new folder, the database, the publishing node and the installing node.
    func setUp() throws -> (file: String, bytes: Data, home: TemporaryHome, url: URL, drop: () -> Void) {
        let home = TemporaryHome()
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<Self.size / 8).map { _ in random.next() as UInt64 }.withUnsafeBytes { Data($0) }
        let file = home.path + "/built"
        try bytes.write(to: URL(fileURLWithPath: file))
        let (url, drop) = try TestPostgres.makeDatabase()
        return (file, bytes, home, url, drop)
    }

    func count(_ table: String, on connection: PostgresConnection) throws -> Int {
        Int(try connection.query("SELECT count(*) FROM \(table)").first?.first.flatMap { $0 } ?? "") ?? -1
    }

    @Test func aBinaryOfSeveralPartsIsInstalledByteForByteAndOnlyOnce() throws {
        let (file, bytes, home, url, drop) = try setUp()
        defer { home.remove(); drop() }
        let a = try ClusterDatabase(url: url, node: "a"), b = try ClusterDatabase(url: url, node: "b")
        let sha256 = try ClusterBinaries(connection: a.connection).store(file)
        #expect(sha256 == (try SHA256.file(file)) && sha256.count == 64)
        #expect(try count("keiji_binary_parts", on: a.connection) == 3)

        let target = home.path + "/node-b/exec/tasks/hello"
        #expect(try ClusterBinaries(connection: b.connection).install(sha256, at: target) == .downloaded(bytes: Self.size))
        #expect(FileManager.default.contents(atPath: target) == bytes)
        let mode = try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        // Installed already (a command applied again, or on its publisher): nothing is read from the database.
        try b.connection.query("DELETE FROM keiji_binary_parts")
        #expect(try ClusterBinaries(connection: b.connection).install(sha256, at: target) == .present)
    }

    @Test func storingAgainAddsNothingAndFinishesAnUploadCutMidway() throws {
        let (file, _, home, url, drop) = try setUp()
        defer { home.remove(); drop() }
        let a = try ClusterDatabase(url: url, node: "a")
        let binaries = ClusterBinaries(connection: a.connection)
        let sha256 = try binaries.store(file)
        #expect(try binaries.store(file) == sha256)
        #expect(try count("keiji_binary_parts", on: a.connection) == 3 && count("keiji_binaries", on: a.connection) == 1)
        // An upload cut after its first part: no keiji_binaries row, so the next store sends the rest.
        try a.connection.execute("DELETE FROM keiji_binaries; DELETE FROM keiji_binary_parts WHERE part > 0")
        #expect(try binaries.store(file) == sha256)
        #expect(try count("keiji_binary_parts", on: a.connection) == 3 && count("keiji_binaries", on: a.connection) == 1)
        let target = home.path + "/installed"
        #expect(try binaries.install(sha256, at: target) == .downloaded(bytes: Self.size))
    }

    @Test func aChangedOrMissingPartIsRefusedAndNothingIsInstalled() throws {
        let (file, _, home, url, drop) = try setUp()
        defer { home.remove(); drop() }
        let a = try ClusterDatabase(url: url, node: "a")
        let binaries = ClusterBinaries(connection: a.connection)
        let sha256 = try binaries.store(file)
        let target = home.path + "/tasks/hello"

        // One byte changed in the middle part: the size is right, the hash is not.
        try a.connection.query("UPDATE keiji_binary_parts SET data = set_byte(data, 10, (get_byte(data, 10) + 1) % 256) WHERE part = 1")
        let changed = #expect(throws: KeijiError.self) { try binaries.install(sha256, at: target) }
        #expect(changed?.code == .conflict && changed?.message.contains("not installed") == true, "\(String(describing: changed))")
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try FileManager.default.contentsOfDirectory(atPath: home.path + "/tasks").isEmpty, "no download left behind")

        try a.connection.query("DELETE FROM keiji_binary_parts WHERE part = 2")
        let missing = #expect(throws: KeijiError.self) { try binaries.install(sha256, at: target) }
        #expect(missing?.code == .notFound, "\(String(describing: missing))")
        #expect(!FileManager.default.fileExists(atPath: target))

        let unknown = #expect(throws: KeijiError.self) { try binaries.install(String(repeating: "0", count: 64), at: target) }
        #expect(unknown?.code == .notFound, "\(String(describing: unknown))")
    }

    /// A `task.saved` of a Swift task carries its binary's hash in the command log, stored before the command.
    @Test func aSwiftTaskCommandNamesItsStoredBinary() throws {
        let (file, _, home, url, drop) = try setUp()
        defer { home.remove(); drop() }
        let a = try ClusterDatabase(url: url, node: "a")
        let definition = TaskDefinition(name: name("hello"), description: "d", action: .binary(path: file),
                                        schedule: ScheduleSpec(.every(1, .hours)), policy: RunPolicy(), directory: home.path)
        let saved = try a.publish(JournalEntry(at: 1000, .taskSaved(definition, taskID: "t")))
        let disabled = try a.publish(JournalEntry(at: 2000, .taskDisabled(name("hello"))))
        let commands = try a.commands(after: 0)
        #expect(commands.map(\.seq) == [saved, disabled])
        #expect(commands.map(\.binary) == [try SHA256.file(file), nil])
        #expect(try count("keiji_binaries", on: a.connection) == 1)
    }
}
