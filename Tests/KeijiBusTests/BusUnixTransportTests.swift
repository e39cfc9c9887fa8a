import Foundation
import KeijiCore
import Synchronization
import Testing

@testable import KeijiBus

/// The default transport: Unix sockets in the user's own `~/.keiji`.
@Suite(.timeLimit(.minutes(5)))  // a hang guard, not a timing check: a loaded full suite took 90–135 s for a test here
struct BusUnixTransportTests {
    @Test func relaysOverPrivateSocketsAndRemovesThemOnStop() async throws {
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let workspace = Workspace(home: home)
        try FileSystem.createDirectory(workspace.systemRoot, mode: 0o700)
        let endpoints = BusEndpoints.resolve(workspace, settings: nil, environment: [:])
        // The request timeout as `startBus`'s, for the same reason: the fake scheduler answers from this process's
        // cooperative pool, which the suite's other tests can keep busy for seconds. With the default 10 s this test
        // failed once in a loaded full suite, the reply it got unprinted; it is printed now.
        let server = BusServer(push: endpoints.push, pull: endpoints.pull, token: testToken, requestTimeout: .seconds(30), log: { _ in })
        try server.start()
        defer { server.stop() }
        #expect(server.boundPush == .unix(path: workspace.busPushSocket))
        #expect(fileMode(workspace.busPushSocket) == 0o600 && fileMode(workspace.busPullSocket) == 0o600)

        let link = SchedulerBusLink(endpoint: endpoints.pull, token: testToken) { .acknowledged($0.id, lsn: 3) }
        let task = Task { await link.run() }
        #expect(await eventually { link.isConnected && server.schedulerConnected })
        let client = BusClient(endpoint: endpoints.push, token: testToken)
        let reply = try await client.send(request("u1"), timeout: .seconds(60))
        #expect(reply == .acknowledged("u1", lsn: 3), "\(reply)")
        task.cancel()
        await task.value

        // stop() returns once both acceptors are done, and each removes its socket file on the way out:
        // files still there would mean a blocked accept on a Unix socket was never woken.
        server.stop()
        #expect(!FileSystem.exists(workspace.busPushSocket))
        #expect(!FileSystem.exists(workspace.busPullSocket))
        // Now there is no bus: that is "not running" (offline path), not an impostor.
        await #expect {
            _ = try await client.send(request("u2"), timeout: .seconds(30))
        } throws: { error in
            (error as? KeijiError)?.code == .unavailable
        }
    }

    /// A socket path too long for `sockaddr_un` (a long HOME) means no bus can be reached, and nothing was sent:
    /// `unavailable`, so the CLI writes the command offline. It was `conflict`, which the CLI takes as sent and of
    /// unknown fate: no command could be written at all, and a create left its folder behind.
    @Test func aSocketPathTooLongIsNoBusNotACommandOfUnknownFate() async throws {
        let path = "/tmp/" + String(repeating: "d", count: 120) + "/bus-push.sock"
        await #expect {
            _ = try await BusClient(endpoint: .unix(path: path), token: "t").send(request("u1"), timeout: .seconds(5))
        } throws: { error in
            (error as? KeijiError)?.code == .unavailable && (error as? KeijiError)?.message.contains("longer than") == true
        }
    }

    @Test func aPathThatIsNotASocketIsLeftAlone() throws {
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let path = home + "/bus-push.sock"
        try "mine".write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try BusListener(.unix(path: path), role: "push")
        } throws: { error in
            (error as? KeijiError)?.message.contains("exists and is not a socket") == true
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "mine")
    }

    @Test func aSocketPathTooLongIsAOneLineError() throws {
        let path = "/tmp/" + String(repeating: "k", count: 120) + "/bus-push.sock"
        #expect {
            _ = try BusListener(.unix(path: path), role: "push")
        } throws: { error in
            (error as? KeijiError)?.message.contains("BUS_TRANSPORT=tcp") == true
        }
    }
}

/// `keiji system` finds a bus whose pid file is gone by connecting to its socket (``BusListenerProcess``). A wedged
/// bus whose backlog is full held that connect, and the `--status` or `--stop` that made it, for good.
@Suite(.timeLimit(.minutes(5)))
struct BusListenerProbeTests {
    @Test func aProbeOfASocketWhoseBacklogIsFullGivesUp() async throws {
        let home = try temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let path = home + "/wedged.sock"
        let listener = try Socket.makeStream(for: .unix(path: path), what: "test")
        defer { Socket.closeRetryingNothing(listener) }
        #expect(try Socket.withAddress(.unix(path: path)) { bind(listener, $0, $1) } == 0)
        #expect(listen(listener, 0) == 0)
        // Never accepted: connect without waiting until the backlog refuses more.
        var queued: [Int32] = []
        defer { queued.forEach(Socket.closeRetryingNothing) }
        while queued.count < 64 {
            let fd = try Socket.makeStream(for: .unix(path: path), what: "test")
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let result = try Socket.withAddress(.unix(path: path)) { connect(fd, $0, $1) }
            queued.append(fd)
            if result != 0 && errno == EAGAIN { break }
        }
        try #require(queued.count < 64, "the backlog filled")
        let answered = Atomic<Bool>(false)
        Thread {
            _ = BusListenerProcess.pid(listeningOn: path)
            answered.store(true, ordering: .relaxed)
        }.start()
        #expect(await eventually(within: .seconds(60)) { answered.load(ordering: .relaxed) }, "the probe gave up on a full backlog")
    }
}
