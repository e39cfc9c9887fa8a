import Foundation
import KeijiCore
import Synchronization
import Testing

@testable import KeijiBus

/// Commands relayed between a client and a (fake) scheduler, and what happens when the scheduler goes away.
@Suite(.timeLimit(.minutes(5)))  // a hang guard, not a timing check: a loaded full suite took 90–135 s for a test here
struct BusRelayTests {
    @Test func relaysACommandAndItsAcknowledgement() async throws {
        let server = try startBus()
        defer { server.stop() }
        let seen = Recorder()
        let scheduler = try await connectLink(server) { request in
            seen.add("\(request.id) \(request.cmd) \(request.taskID ?? "-")")
            return .acknowledged(request.id, lsn: 42)
        }

        let reply = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("req-1"), timeout: .seconds(30))
        #expect(reply == .acknowledged("req-1", lsn: 42))
        #expect(seen.all == ["req-1 trigger nightly"])
        await scheduler.stop()
    }

    @Test func relaysASaveWithItsDefinition() async throws {
        let server = try startBus()
        defer { server.stop() }
        let definition = TaskDefinition(name: try TaskName("backup"), description: "nightly backup", action: .command("true"),
                                        schedule: ScheduleSpec(.every(10, .seconds)), policy: RunPolicy(), directory: "/tmp")
        let received = Mutex<BusRequest?>(nil)
        let scheduler = try await connectLink(server) { request in
            received.withLock { $0 = request }
            return .acknowledged(request.id, lsn: 7)
        }
        let sent = try BusRequest(id: "save-1", event: .taskSaved(definition, taskID: "uuid-1"))
        let reply = try await BusClient(endpoint: server.boundPush, token: testToken).send(sent, timeout: .seconds(30))
        #expect(reply.ok && reply.lsn == 7 && reply.id == "save-1")
        let got = try #require(received.withLock { $0 })
        #expect(try got.event() == .taskSaved(definition, taskID: "uuid-1"))
        await scheduler.stop()
    }

    @Test func noSchedulerMeansOffline() async throws {
        let server = try startBus()
        defer { server.stop() }
        let reply = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("r"), timeout: .seconds(30))
        #expect(reply == .failure("r", .offline, "no scheduler is connected"))
    }

    /// The original's bug: after a scheduler restart, the first command went to the dead pull handler.
    @Test func schedulerRestartBetweenCommandsLosesNothing() async throws {
        let server = try startBus()
        defer { server.stop() }
        let client = BusClient(endpoint: server.boundPush, token: testToken)
        let first = Recorder(), second = Recorder()

        let link1 = try await connectLink(server) { request in
            first.add(request.id)
            return .acknowledged(request.id, lsn: 1)
        }
        #expect(try await client.send(request("A"), timeout: .seconds(30)) == .acknowledged("A", lsn: 1))
        await link1.stop()
        #expect(await eventually { !server.schedulerConnected })

        let link2 = try await connectLink(server) { request in
            second.add(request.id)
            return .acknowledged(request.id, lsn: 2)
        }
        #expect(try await client.send(request("B"), timeout: .seconds(30)) == .acknowledged("B", lsn: 2))
        #expect(first.all == ["A"])
        #expect(second.all == ["B"])
        await link2.stop()
    }

    /// Repeated restarts: every command sent while a scheduler is connected reaches exactly that scheduler.
    @Test func repeatedRestartsDeliverEveryCommandToTheLiveScheduler() async throws {
        let server = try startBus()
        defer { server.stop() }
        let client = BusClient(endpoint: server.boundPush, token: testToken)
        for round in 0..<5 {
            let seen = Recorder()
            let link = try await connectLink(server) { request in
                seen.add(request.id)
                return .acknowledged(request.id, lsn: UInt64(round))
            }
            for n in 0..<3 {
                let id = "r\(round)-\(n)"
                #expect(try await client.send(request(id), timeout: .seconds(30)) == .acknowledged(id, lsn: UInt64(round)))
            }
            #expect(seen.all == ["r\(round)-0", "r\(round)-1", "r\(round)-2"])
            await link.stop()
        }
    }

    @Test func aNewHelloReplacesTheOldSchedulerConnection() async throws {
        let server = try startBus()
        defer { server.stop() }
        let old = try await RawClient.authenticated(server.boundPull, as: .scheduler)
        defer { old.close() }

        let seen = Recorder()
        let link = try await connectLink(server) { request in
            seen.add(request.id)
            return .acknowledged(request.id, lsn: 9)
        }
        // The old connection is closed by the bus, and commands go to the new one.
        #expect(await old.readLine() == .closed)
        let reply = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("new"), timeout: .seconds(30))
        #expect(reply == .acknowledged("new", lsn: 9))
        #expect(seen.all == ["new"])
        await link.stop()
    }

    @Test func schedulerDisconnectingMidRequestIsUnacknowledged() async throws {
        // The bus's own wait is made far longer than anything a loaded machine adds (a debug build at load 10
        // took 8 s here; a full suite on two busy cores has held a test's resumptions for 58 s), so only the
        // disconnect can end the request within the bound below.
        let server = try startBus(requestTimeout: .seconds(600))
        defer { server.stop() }
        let started = Recorder()
        let link = try await connectLink(server) { request in
            started.add(request.id)
            try? await Task.sleep(for: .seconds(120))
            return .acknowledged(request.id, lsn: 1)
        }
        let client = BusClient(endpoint: server.boundPush, token: testToken)
        let pending = Task { try await client.send(request("mid"), timeout: .seconds(700)) }
        #expect(await eventually { started.all == ["mid"] })
        let before = ContinuousClock.now
        await link.stop()
        let reply = try await pending.value
        #expect(reply.id == "mid")
        #expect(!reply.ok)
        #expect(reply.code == .unacknowledged)
        // Well under the bus's own 600 s wait: the disconnect, not a timeout, ended it.
        #expect(ContinuousClock.now - before < .seconds(300))
    }

    @Test func aSilentSchedulerTimesOutAsUnacknowledged() async throws {
        let server = try startBus(requestTimeout: .milliseconds(300))
        defer { server.stop() }
        let link = try await connectLink(server) { request in
            try? await Task.sleep(for: .seconds(30))
            return .acknowledged(request.id, lsn: 1)
        }
        let reply = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("slow"), timeout: .seconds(30))
        #expect(reply.id == "slow")
        #expect(reply.code == .unacknowledged)
        #expect(reply.error?.contains("did not acknowledge") == true)
        await link.stop()
    }

    @Test func concurrentCommandsEachGetTheirOwnReply() async throws {
        let server = try startBus()
        defer { server.stop() }
        let link = try await connectLink(server) { request in
            try? await Task.sleep(for: .milliseconds(Int.random(in: 0...50)))
            return .acknowledged(request.id, lsn: UInt64(request.id.dropFirst())!)
        }
        let client = BusClient(endpoint: server.boundPush, token: testToken)
        let replies = try await withThrowingTaskGroup(of: BusReply.self) { group in
            for n in 1...16 { group.addTask { try await client.send(request("c\(n)"), timeout: .seconds(30)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(replies.compactMap(\.id)) == Set((1...16).map { "c\($0)" }))
        for reply in replies { #expect(reply.ok && "c\(reply.lsn!)" == reply.id) }
        await link.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let server = try startBus()
        defer { server.stop() }
        let link = try await connectLink(server) { request in
            if request.id == "first" { try? await Task.sleep(for: .milliseconds(200)) }
            return .acknowledged(request.id, lsn: request.id == "first" ? 1 : 2)
        }
        let raw = try await RawClient.authenticated(server.boundPush)
        defer { raw.close() }
        let lines = [request("first"), request("second")].map { String(decoding: BusWire.encode($0), as: UTF8.self) }
        await raw.sendRaw(Array((lines.joined(separator: "\n") + "\n").utf8))
        #expect(try await raw.readReply() == .acknowledged("first", lsn: 1))
        #expect(try await raw.readReply() == .acknowledged("second", lsn: 2))
        await link.stop()
    }

    @Test func aDuplicateIDInFlightIsRefused() async throws {
        let server = try startBus()
        defer { server.stop() }
        let started = Recorder()
        // The first request stays in flight until the duplicate has its answer. (A fixed 500 ms sleep here
        // was the flake: on a loaded machine the duplicate arrived after the first was acknowledged.)
        let release = Flag()
        let link = try await connectLink(server) { request in
            started.add(request.id)
            _ = await eventually { release.isSet }
            return .acknowledged(request.id, lsn: 5)
        }
        let client = BusClient(endpoint: server.boundPush, token: testToken)
        let first = Task { try await client.send(request("same"), timeout: .seconds(30)) }
        #expect(await eventually { started.all == ["same"] })
        let duplicate = try await client.send(request("same"), timeout: .seconds(30))
        release.set()
        #expect(duplicate.code == .invalid)
        #expect(try await first.value == .acknowledged("same", lsn: 5))
        #expect(started.all == ["same"])
        await link.stop()
    }

    @Test func stoppingTheBusReleasesItsPorts() async throws {
        // A token of its own: once stopped, the ports are free for any parallel test's bus (they come from port
        // 0), and the late request below must not pass that bus's handshake and land in its test.
        let token = BusHandshake.makeNonce()
        let server = BusServer(push: .tcp(port: 0), pull: .tcp(port: 0), token: token, log: { _ in })
        try server.start()
        let push = server.boundPush, pull = server.boundPull
        server.stop()
        let again = BusServer(push: push, pull: pull, token: token, log: { _ in })
        try again.start()
        again.stop()
        await #expect(throws: (any Error).self) {
            try await BusClient(endpoint: push, token: token).send(request("late"), timeout: .seconds(2))
        }
    }
}
