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
        #expect(TokenFile.generate() != TokenFile.generate())
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
}

@Suite struct BusEndpointsTests {
    let workspace = Workspace(home: "/home/someone")

    @Test func unixSocketsInTheUsersOwnFolderByDefault() throws {
        let endpoints = BusEndpoints.resolve(workspace, settings: nil, environment: [:])
        #expect(endpoints == BusEndpoints(push: .unix(path: "/home/someone/.keiji/bus-push.sock"),
                                          pull: .unix(path: "/home/someone/.keiji/bus-pull.sock")))
        let fromFile = try Settings.parse("BUS_TRANSPORT=unix\n", file: "settings.conf")
        #expect(BusEndpoints.resolve(workspace, settings: fromFile, environment: [:]) == endpoints)
    }

    @Test func tcpFromSettings() throws {
        let settings = try Settings.parse("BUS_TRANSPORT=tcp\nBUS_PUSH_PORT=9005\nBUS_PULL_PORT=9006\n", file: "settings.conf")
        #expect(BusEndpoints.resolve(workspace, settings: settings, environment: [:]) == BusEndpoints(push: .tcp(port: 9005), pull: .tcp(port: 9006)))
        let defaults = try Settings.parse("BUS_TRANSPORT=tcp\n", file: "settings.conf")
        #expect(BusEndpoints.resolve(workspace, settings: defaults, environment: [:]) == BusEndpoints(push: .tcp(port: 8005), pull: .tcp(port: 8006)))
    }

    @Test func environmentPortsOverrideAndImplyTCP() {
        let both = [BusEndpoints.pushVariable: "9123", BusEndpoints.pullVariable: " 9124 "]
        #expect(BusEndpoints.resolve(workspace, settings: nil, environment: both) == BusEndpoints(push: .tcp(port: 9123), pull: .tcp(port: 9124)))
        for bad in ["", "abc", "0", "70000", "-1", "80.5"] {
            let endpoints = BusEndpoints.resolve(workspace, settings: nil, environment: [BusEndpoints.pushVariable: bad])
            #expect(endpoints.push == .unix(path: workspace.busPushSocket), "\(bad)")
        }
    }
}
