import Foundation
import KeijiCore
import KeijiTestSupport
import Testing

@testable import KeijiBus

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The real `keiji-bus` executable, as a user (or the CLI) starts it.
@Suite(.timeLimit(.minutes(5)))  // a hang guard, not a timing check: a loaded full suite took 90–135 s for a test here
struct BusBinaryTests {
    @Test func runsRelaysAndStopsCleanlyOnSIGTERM() async throws {
        let binary = try #require(busBinary(), "keiji-bus not found next to the test bundle")
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let workspace = Workspace(home: home)
        // Settings present: the bus logs to its service log instead of stderr.
        try FileSystem.createDirectory(workspace.root)
        try Settings.defaultFileContents(timeZone: "UTC").write(toFile: workspace.settingsFile, atomically: true, encoding: .utf8)
        let push = try freePort()
        var pull = try freePort()
        while pull == push { pull = try freePort() }
        let bus = try BusProcess(binary: binary, home: home, push: push, pull: pull)
        defer { bus.kill() }

        #expect(await eventually(within: .seconds(60)) { FileSystem.exists(workspace.busTokenFile) })
        #expect(fileMode(workspace.busTokenFile) == 0o600)
        #expect(fileMode(workspace.systemRoot) == 0o700)
        let token = try BusToken.loadOrCreate(workspace)
        #expect(token.count == 64)

        let client = BusClient(endpoint: .tcp(port: push), token: token)
        #expect(await eventually(within: .seconds(60)) {
            (try? await client.send(request("probe"), timeout: .seconds(1)))?.code == .offline
        })
        let scheduler = SchedulerBusLink(endpoint: .tcp(port: pull), token: token) { request in .acknowledged(request.id, lsn: 314) }
        let link = Task { await scheduler.run() }
        #expect(await eventually { scheduler.isConnected })
        // The real bus waits 10 s for the acknowledgement, and this fake scheduler answers on the cooperative
        // pool the suite shares (see twoHomesEachRunTheirOwnBus): an unacknowledged reply is asked again.
        var reply = try await client.send(request("real"), timeout: .seconds(30))
        for _ in 0..<2 where reply.code == .unacknowledged {
            reply = try await client.send(request("real"), timeout: .seconds(30))
        }
        #expect(reply == .acknowledged("real", lsn: 314), "\(reply)")
        link.cancel()
        await link.value

        Glibc.kill(bus.process.processIdentifier, SIGTERM)
        // Read the status only once it exited: Foundation traps on the status of a process still running.
        try #require(await eventually(within: .seconds(60)) { !bus.process.isRunning })
        #expect(bus.process.terminationReason == .exit)
        #expect(bus.process.terminationStatus == 0)
        #expect(bus.output().contains("keiji-bus listening on 127.0.0.1:\(push) (push) and 127.0.0.1:\(pull) (pull)"))
        let log = try String(contentsOfFile: workspace.serviceLogFile("bus"), encoding: .utf8)
        #expect(log.contains("listening"))
        #expect(log.contains("scheduler connected"))
        #expect(log.contains("stopping on SIGTERM"))
    }

    @Test func exitsWithOneLineWhenThePortIsTaken() async throws {
        let binary = try #require(busBinary(), "keiji-bus not found next to the test bundle")
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let push = try freePort()
        let busy = try BusListener(.tcp(port: push), role: "test")
        defer { busy.close() }
        let bus = try BusProcess(binary: binary, home: home, push: push, pull: try freePort())
        defer { bus.kill() }
        try #require(await eventually(within: .seconds(60)) { !bus.process.isRunning })
        #expect(bus.process.terminationStatus == 1)
        let errors = bus.errors().split(separator: "\n")
        #expect(errors.count == 1)
        #expect(errors.first?.contains("127.0.0.1:\(push)") == true)
    }
}

extension BusBinaryTests {
    /// Two HOMEs (two users) on one machine: with the default transport each bus listens in its own
    /// `~/.keiji`, both start, each serves its own user, and neither accepts the other's.
    @Test func twoHomesEachRunTheirOwnBus() async throws {
        let binary = try #require(busBinary(), "keiji-bus not found next to the test bundle")
        var homes: [String] = []
        defer { homes.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        var buses: [BusProcess] = []
        defer { buses.forEach { $0.kill() } }
        for _ in 0..<2 {
            let home = try temporaryHome()
            homes.append(home)
            buses.append(try BusProcess(binary: binary, home: home, push: nil, pull: nil))
        }
        let workspaces = homes.map(Workspace.init(home:))
        for (bus, workspace) in zip(buses, workspaces) {
            #expect(await eventually(within: .seconds(60)) { bus.output().contains("listening") }, "\(bus.errors())")
            #expect(bus.process.isRunning)
            #expect(bus.output().contains("keiji-bus listening on \(workspace.busPushSocket) (push) and \(workspace.busPullSocket) (pull)"))
            #expect(fileMode(workspace.busPushSocket) == 0o600 && fileMode(workspace.busPullSocket) == 0o600)
        }
        let tokens = try workspaces.map { try BusToken.loadOrCreate($0) }
        #expect(tokens[0] != tokens[1])
        for index in 0..<2 {
            let endpoints = BusEndpoints.resolve(workspaces[index], settings: nil, environment: [:])
            let link = SchedulerBusLink(endpoint: endpoints.pull, token: tokens[index]) { .acknowledged($0.id, lsn: UInt64(index + 1)) }
            let task = Task { await link.run() }
            #expect(await eventually { link.isConnected })
            do {
                // The real bus waits 10 s for an acknowledgement; this fake scheduler answers on a cooperative pool
                // the whole suite shares, which a soak run at load 6 kept busy longer. An unacknowledged reply says
                // nothing about which bus relayed it, so it is asked again (at most three times).
                var reply = try await BusClient(endpoint: endpoints.push, token: tokens[index]).send(request("mine"), timeout: .seconds(30))
                for _ in 0..<2 where reply.code == .unacknowledged {
                    reply = try await BusClient(endpoint: endpoints.push, token: tokens[index]).send(request("mine"), timeout: .seconds(30))
                }
                #expect(reply == .acknowledged("mine", lsn: UInt64(index + 1)))
            } catch {
                // Seen once in hundreds of runs ("refused us (unauthorized): wrong proof"): what the bus saw says why.
                Issue.record("home \(index): \(error); the bus logged: \(buses[index].errors())")
            }
            // The other user's token does not make this bus ours.
            await #expect(throws: BusAuthenticationFailure.self) {
                _ = try await BusClient(endpoint: endpoints.push, token: tokens[1 - index]).send(request("theirs"), timeout: .seconds(30))
            }
            task.cancel()
            await task.value
        }
    }

    /// A bus killed with SIGKILL leaves its socket file behind; the next one replaces it. A live bus's
    /// socket is never taken over.
    @Test func aStaleSocketIsReplacedAndALiveOneIsNot() async throws {
        let binary = try #require(busBinary(), "keiji-bus not found next to the test bundle")
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let workspace = Workspace(home: home)
        let first = try BusProcess(binary: binary, home: home, push: nil, pull: nil)
        #expect(await eventually(within: .seconds(60)) { first.output().contains("listening") })
        let second = try BusProcess(binary: binary, home: home, push: nil, pull: nil)
        defer { second.kill() }
        #expect(await eventually(within: .seconds(60)) { !second.process.isRunning })
        #expect(!second.process.isRunning && second.process.terminationStatus == 1, "exits 1 (a still-running process has no status to read)")
        #expect(second.errors().contains("another keiji-bus is already listening there"))
        first.kill()
        #expect(await eventually(within: .seconds(60)) { !first.process.isRunning })
        #expect(FileSystem.exists(workspace.busPushSocket))
        let third = try BusProcess(binary: binary, home: home, push: nil, pull: nil)
        defer { third.kill() }
        #expect(await eventually(within: .seconds(60)) { third.output().contains("listening") }, "\(third.errors())")
        let reply = try await BusClient(endpoint: .unix(path: workspace.busPushSocket), token: try BusToken.loadOrCreate(workspace))
            .send(request("after"), timeout: .seconds(30))
        #expect(reply.code == .offline)
    }
}

extension BusBinaryTests {
    /// Another user's bus on a Unix socket: the CLI sees whose it is (`SO_PEERCRED`) and sends nothing, and
    /// that bus drops a connection from a uid not its own before any handshake. Needs root (to run a bus as
    /// `nobody` and to reach its private socket).
    @Test(.enabled(if: NeededUnderCI.runs(NeededUnderCI.canRunAsNobody)))
    func anotherUsersBusIsNotOurs() async throws {
        try #require(NeededUnderCI.canRunAsNobody, "needs root and /usr/bin/setpriv (under CI=true it runs, and fails, without them)")
        let binary = try #require(busBinary(), "keiji-bus not found next to the test bundle")
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        #expect(chown(home, 65534, 65534) == 0)
        let bus = try BusProcess(binary: binary, home: home, push: nil, pull: nil,
                                 launcher: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        defer { bus.kill() }
        #expect(await eventually(within: .seconds(60)) { bus.output().contains("listening") }, "\(bus.errors())")
        let workspace = Workspace(home: home)
        let theirToken = try BusToken.loadOrCreate(workspace)  // root can read it; even so the bus is not ours
        await #expect {
            _ = try await BusClient(endpoint: .unix(path: workspace.busPushSocket), token: theirToken).send(request("x"), timeout: .seconds(30))
        } throws: { error in
            (error as? BusAuthenticationFailure)?.message.contains("belongs to uid 65534") == true
        }
        // Skipping our own check: their bus closes the connection without a challenge.
        let raw = try await RawClient.connect(.unix(path: workspace.busPushSocket))
        defer { raw.close() }
        await raw.sendLine(#"{"hello":"client","nonce":"\#(BusHandshake.makeNonce())"}"#)
        #expect(await raw.readLine() == .closed)
        #expect(await eventually { bus.errors().contains("refused a client connection from uid 0") }, "\(bus.errors())")
    }
}

/// The `keiji-bus` built beside this test bundle (or in the package's build folders).
func busBinary() -> String? {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for directory in [bundleDirectory, bundleDirectory.deletingLastPathComponent(),
                      package.appendingPathComponent(".build-bus/debug"), package.appendingPathComponent(".build/debug")] {
        let candidate = directory.appendingPathComponent("keiji-bus").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// A running `keiji-bus` with its output captured to files (pipes could fill up and block it).
final class BusProcess: Sendable {
    let process: Process
    let outputPath: String
    let errorPath: String

    /// `push`/`pull` nil: no port variables, so the bus uses its default transport (Unix sockets in `home`).
    /// `launcher`: a command the bus runs under (e.g. `setpriv` to run it as another user).
    init(binary: String, home: String, push: UInt16?, pull: UInt16?, launcher: [String] = []) throws {
        outputPath = home + "/bus.stdout"
        errorPath = home + "/bus.stderr"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher.first ?? binary)
        process.arguments = launcher.isEmpty ? [] : Array(launcher.dropFirst()) + [binary]
        var environment = ["HOME": home, "PATH": "/usr/bin:/bin"]
        if let push { environment[BusEndpoints.pushVariable] = "\(push)" }
        if let pull { environment[BusEndpoints.pullVariable] = "\(pull)" }
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: outputPath)
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        try process.run()
        self.process = process
    }

    func output() -> String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    func errors() -> String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}
