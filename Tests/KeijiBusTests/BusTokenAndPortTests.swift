import Foundation
import KeijiCore
import Testing

@testable import KeijiBus

@Suite struct BusTokenTests {
    @Test func createsAPrivateTokenOnceAndKeepsIt() throws {
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let workspace = Workspace(home: home)
        let token = try BusToken.loadOrCreate(workspace)
        #expect(token.count == 64)
        #expect(token.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(fileMode(workspace.busTokenFile) == 0o600)
        #expect(fileMode(workspace.systemRoot) == 0o700)
        #expect(try BusToken.loadOrCreate(workspace) == token)
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace.systemRoot) == ["bus.token"])
    }

    @Test func tokensAreRandom() {
        #expect(BusToken.generate() != BusToken.generate())
    }

    @Test func readsAnExistingTokenAndReplacesABlankOne() throws {
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let workspace = Workspace(home: home)
        try FileSystem.createDirectory(workspace.systemRoot)
        try "  given-token \n".write(toFile: workspace.busTokenFile, atomically: true, encoding: .utf8)
        #expect(try BusToken.loadOrCreate(workspace) == "given-token")
        try "\n".write(toFile: workspace.busTokenFile, atomically: true, encoding: .utf8)
        let fresh = try BusToken.loadOrCreate(workspace)
        #expect(fresh.count == 64)
        #expect(try BusToken.loadOrCreate(workspace) == fresh)
    }

    @Test func concurrentCreatorsAgreeOnOneToken() async throws {
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let workspace = Workspace(home: home)
        let tokens = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 {
                group.addTask { try await DedicatedThread.run("token") { try BusToken.loadOrCreate(workspace) } }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(tokens.count == 1)
    }

    @Test func tokenComparison() {
        #expect(BusToken.matches("abc", "abc"))
        #expect(!BusToken.matches("abd", "abc"))
        #expect(!BusToken.matches("ab", "abc"))
        #expect(!BusToken.matches(nil, "abc"))
        #expect(!BusToken.matches("", ""))
    }
}

@Suite struct BusPortsTests {
    @Test func defaultsAndOverrides() {
        #expect(BusPorts.port("P", default: 8005, environment: [:]) == 8005)
        #expect(BusPorts.port("P", default: 8005, environment: ["P": "9123"]) == 9123)
        #expect(BusPorts.port("P", default: 8006, environment: ["P": " 9124 "]) == 9124)
        for bad in ["", "abc", "0", "70000", "-1", "80.5"] {
            #expect(BusPorts.port("P", default: 8006, environment: ["P": bad]) == 8006, "\(bad)")
        }
        #expect(BusPorts.defaultPush == 8005 && BusPorts.defaultPull == 8006)
    }
}
