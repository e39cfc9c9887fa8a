import Foundation
import KeijiCore
import Testing

@testable import KeijiBus

/// What the bus refuses, and that no input brings it down.
@Suite(.timeLimit(.minutes(5)))  // a hang guard, not a timing check: a loaded full suite took 90–135 s for a test here
struct BusRefusalTests {
    @Test func garbageGetsInvalidAndTheBusKeepsServing() async throws {
        let server = try startBus()
        defer { server.stop() }
        let raw = try await RawClient.authenticated(server.boundPush)
        let garbage: [[UInt8]] = [
            Array("hello there".utf8), [], Array("{}".utf8), Array("[]".utf8), Array("null".utf8), Array("42".utf8),
            [0xff, 0xfe, 0x00, 0x80], Array(#"{"id":5,"cmd":"stop"}"#.utf8), Array(#"{"id":"x","cmd":"stop","definition":42}"#.utf8),
            Array(repeating: UInt8(ascii: "["), count: 100_000), Array(repeating: UInt8(ascii: "{"), count: 50_000),
            Array(#"{"id":"x","cmd":"stop""#.utf8),
        ]
        for line in garbage {
            await raw.sendRaw(line + [UInt8(ascii: "\n")])
            let reply = try await raw.readReply()
            #expect(!reply.ok)
            #expect(reply.code == .invalid, "line starting \(line.prefix(20))")
        }
        // Odd but possibly well-formed input: any refusal will do, as long as one reply comes back.
        for line in [#"{"id":"\ud800","cmd":"stop"}"#, #"{"id":"x","cmd":"stop","token":null,"extra":[1,2,{"a":null}]}"#, "\r", " \t "] {
            await raw.sendLine(line)
            #expect(try await raw.readReply().ok == false)
        }
        // A missing field still names the request it came from.
        await raw.sendLine(#"{"id":"g1","token":"\#(testToken)"}"#)
        let missing = try await raw.readReply()
        #expect(missing.id == "g1" && missing.code == .invalid)
        #expect(missing.error?.contains("cmd") == true)
        raw.close()

        let next = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("after"), timeout: .seconds(30))
        #expect(next.code == .offline)
    }

    @Test func aLineOverOneMiBIsInvalidAndClosesTheConnection() async throws {
        let server = try startBus()
        defer { server.stop() }
        let raw = try await RawClient.authenticated(server.boundPush)
        defer { raw.close() }
        await raw.sendRaw(Array(repeating: UInt8(ascii: "x"), count: (1 << 20) + 1) + [UInt8(ascii: "\n")])
        let reply = try await raw.readReply()
        #expect(reply == .failure(nil, .invalid, "request larger than 1 MiB"))
        #expect(await raw.readLine() == .closed)

        let next = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("after"), timeout: .seconds(30))
        #expect(next.code == .offline)
    }

    @Test func anEndlessLineWithoutNewlineIsCutOffAtOneMiB() async throws {
        let server = try startBus()
        defer { server.stop() }
        let raw = try await RawClient.authenticated(server.boundPush)
        defer { raw.close() }
        let writer = Task { await raw.sendRaw(Array(repeating: UInt8(ascii: " "), count: 3 << 20)) }
        let reply = try await raw.readReply()
        #expect(reply.code == .invalid && reply.error == "request larger than 1 MiB")
        _ = await writer.value
    }

    @Test func aRequestOfExactlyOneMiBIsAccepted() async throws {
        let server = try startBus()
        defer { server.stop() }
        let raw = try await RawClient.authenticated(server.boundPush)
        defer { raw.close() }
        var line = BusWire.encode(request("big"))
        line += Array(repeating: UInt8(ascii: " "), count: (1 << 20) - line.count)
        #expect(line.count == 1 << 20)
        await raw.sendRaw(line + [UInt8(ascii: "\n")])
        #expect(try await raw.readReply() == .failure("big", .offline, "no scheduler is connected"))
    }

    @Test func anUnknownCommandIsInvalid() async throws {
        let server = try startBus()
        defer { server.stop() }
        let link = try await connectLink(server) { request in .acknowledged(request.id, lsn: 1) }
        let reply = try await BusClient(endpoint: server.boundPush, token: testToken).send(request("u", "reboot"), timeout: .seconds(30))
        #expect(reply.id == "u" && reply.code == .invalid)
        #expect(reply.error?.contains("unknown command") == true)
        await link.stop()
    }

    @Test func theClientSaysWhenTheBusIsNotRunning() async throws {
        let port = try freePort()
        await #expect {
            try await BusClient(endpoint: .tcp(port: port), token: testToken).send(request("x"), timeout: .seconds(2))
        } throws: { error in
            guard let error = error as? KeijiError else { return false }
            return error.code == .unavailable && error.message.contains("keiji-bus is not running")
        }
    }

    @Test func startingOnAPortInUseNamesThePort() async throws {
        let busy = try BusListener(.tcp(port: 0), role: "test")
        defer { busy.close() }
        let server = BusServer(push: busy.endpoint, pull: .tcp(port: 0), token: testToken, log: { _ in })
        #expect {
            try server.start()
        } throws: { error in
            (error as? KeijiError)?.message.contains("\(busy.endpoint) (push)") == true
        }
        let pullBusy = BusServer(push: .tcp(port: 0), pull: busy.endpoint, token: testToken, log: { _ in })
        #expect {
            try pullBusy.start()
        } throws: { error in
            (error as? KeijiError)?.message.contains("\(busy.endpoint) (pull)") == true
        }
    }
}
