import Foundation
import Synchronization
import KeijiTestSupport
import Testing
@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The dashboard's and the metrics endpoint's HTTP server against what any local user can send: every request
/// is answered within its limits (431, 413, 408, 503) without the route being asked, and the server goes on
/// answering afterwards. Under FlyingFox two 128 KB header lines stopped every firing for 45 s.
struct LoopbackHTTPServerTests {
    /// The exchanges block on sockets: on a thread of their own, so the routes they wait for have the pool.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }

    /// A server on a free loopback port whose route answers `hello <path>` and counts its calls; a request for
    /// `/hold` stays with the route until ``release()``.
    final class Served: Sendable {
        final class Calls: Sendable {
            let count = Mutex(0)
            let released = Mutex(false)
        }
        let server: LoopbackHTTPServer
        private let counted = Calls()
        var calls: Int { counted.count.withLock { $0 } }
        func release() { counted.released.withLock { $0 = true } }

        init(requestDeadline: Duration = LoopbackHTTPServer.requestDeadline, descriptorCeiling: Int = Int.max) async throws {
            let counted = counted
            var started: LoopbackHTTPServer?
            for _ in 0..<50 where started == nil {
                let server = LoopbackHTTPServer(port: UInt16.random(in: 20000..<32000), timeout: .seconds(30), requestDeadline: requestDeadline,
                                                descriptorCeiling: descriptorCeiling) { request in
                    counted.count.withLock { $0 += 1 }
                    while request.path == "/hold", !counted.released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
                    let query = request.query.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
                    return .text(200, "hello \(request.method) \(request.path) \(query) \(request.body.count)")
                }
                if await server.start() == nil { started = server }
            }
            server = try #require(started)
        }

        var port: UInt16 { server.port }
    }

    static func get(_ port: UInt16, _ target: String, method: String = "GET", extra: String = "") throws -> HTTPAnswer? {
        try HTTPTestClient.exchange(port, Array("\(method) \(target) HTTP/1.1\r\nHost: x\r\n\(extra)\r\n".utf8), untilClose: method == "HEAD")
    }

    @Test func aRequestIsParsedAndAnsweredOnce() async throws {
        let s = try await Served()
        defer { Task { await s.server.stop() } }
        var answer = try #require(try await blocking { try Self.get(s.port, "/a/./b/../c?task=x%2Fy&q=a+b") })
        #expect(answer.status == 200 && answer.body == "hello GET /a/c task=x/y,q=a b 0", "\(answer)")
        #expect(answer.headers["connection"] == "close" && answer.headers["content-length"] == String(answer.body.utf8.count))
        answer = try #require(try await blocking { try HTTPTestClient.exchange(s.port, Array("POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\nab".utf8) + Array("cde".utf8)) })
        #expect(answer.body == "hello POST /form  5")
        // HEAD: the GET route's length, no body.
        answer = try #require(try await blocking { try Self.get(s.port, "/x", method: "HEAD") })
        #expect(answer.status == 200 && answer.body.isEmpty && answer.headers["content-length"] == String("hello GET /x  0".utf8.count), "\(answer)")
        #expect(s.calls == 3)
    }

    @Test func requestsBeyondTheLimitsAreRefusedWithoutTheRoute() async throws {
        let s = try await Served()
        defer { Task { await s.server.stop() } }
        let huge = String(repeating: "a", count: 1 << 20)
        let refused = try await blocking { try Self.get(s.port, "/metrics", extra: "X: \(huge)\r\n") }
        #expect(refused?.status == 431 && refused?.body == "431 the request's line and header fields are over 16384 bytes\n", "\(String(describing: refused))")
        #expect(try await blocking { try HTTPTestClient.exchange(s.port, Array("GET /\(huge) HTTP/1.1\r\n".utf8))?.status } == 431)
        #expect(try await blocking { try Self.get(s.port, "/", extra: "Content-Length: 9000\r\n")?.status } == 413)
        #expect(try await blocking { try Self.get(s.port, "/", extra: "Transfer-Encoding: chunked\r\n")?.status } == 413)
        #expect(try await blocking { try Self.get(s.port, "/", extra: "Content-Length: -1\r\n")?.status } == 400)
        #expect(try await blocking { try Self.get(s.port, "/", extra: "no colon here\r\n")?.status } == 400)
        #expect(try await blocking { try HTTPTestClient.exchange(s.port, Array("GARBAGE\r\n\r\n".utf8))?.status } == 400)
        #expect(try await blocking { try HTTPTestClient.exchange(s.port, Array("GET / HTTP/2.0\r\n\r\n".utf8))?.status } == 505)
        #expect(s.calls == 0)
        #expect(try await blocking { try Self.get(s.port, "/after")?.status } == 200)
    }

    @Test func aRequestThatDoesNotArriveInTimeIsAnswered408() async throws {
        let s = try await Served(requestDeadline: .milliseconds(300))
        defer { Task { await s.server.stop() } }
        let status = try await blocking {
            let fd = try LoopbackSocket.connected(port: s.port)
            defer { close(fd) }
            _ = send(fd, "GET / HTTP/1.1\r\nX-Slow: ", 24, Int32(MSG_NOSIGNAL))
            return HTTPTestClient.read(fd)?.status
        }
        #expect(status == 408)
        #expect(s.calls == 0)
    }

    /// Past ``LoopbackHTTPServer/connectionLimit`` connections, a new one closes the oldest that has not sent its
    /// whole request: any local user holding 40 unfinished connections got every scrape of the owner answered 503.
    @Test func unfinishedConnectionsPastTheLimitMakeRoomForANewOne() async throws {
        let s = try await Served()
        defer { Task { await s.server.stop() } }
        let (served, oldestClosed) = try await blocking {
            var idle: [Int32] = []
            defer { for fd in idle { close(fd) } }
            for _ in 0..<LoopbackHTTPServer.connectionLimit + 8 {
                let fd = try LoopbackSocket.connected(port: s.port)
                _ = send(fd, "GET /metrics HTTP/1.1\r\n", 23, Int32(MSG_NOSIGNAL))
                idle.append(fd)
            }
            let served = try Self.get(s.port, "/scrape")?.status == 200
            // The first one was evicted: it reads an answer or the end, never waits for its deadline (10 s).
            var wait = timeval(tv_sec: 5, tv_usec: 0)
            _ = setsockopt(idle[0], SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
            var scratch = [UInt8](repeating: 0, count: 4096)
            var ended = false
            while case let n = recv(idle[0], &scratch, scratch.count, 0), n >= 0 {
                if n == 0 { ended = true; break }
            }
            return (served, ended)
        }
        #expect(served)
        #expect(oldestClosed)
    }

    /// Connections whose answers are never read are evicted before any still reading: 32 complete requests (401s from
    /// the metrics endpoint, to anyone) whose answers sat unread kept their slots through the send and the linger, and
    /// sent again every second they got every scrape of the owner answered 503.
    @Test func answeredConnectionsNobodyReadsMakeRoomForANewOne() async throws {
        let s = try await Served()
        defer { Task { await s.server.stop() } }
        let status = try await blocking {
            var unread: [Int32] = []
            defer { for fd in unread { close(fd) } }
            let request = "GET /metrics HTTP/1.1\r\n\r\n"
            for _ in 0..<LoopbackHTTPServer.connectionLimit {
                let fd = try LoopbackSocket.connected(port: s.port)
                _ = send(fd, request, request.utf8.count, Int32(MSG_NOSIGNAL))
                unread.append(fd)
            }
            // Each has its answer waiting (peeked at, not read): the server is past its route on all of them.
            var scratch = [UInt8](repeating: 0, count: 1)
            for fd in unread { _ = recv(fd, &scratch, 1, Int32(MSG_PEEK)) }
            return try Self.get(s.port, "/scrape")?.status
        }
        #expect(status == 200)
    }

    /// Only when every connection's request is with the route is a newcomer refused, at once, with 503 and the
    /// reason, and without the route; the slots come back as the route answers.
    @Test func aNewcomerIsAnswered503WhileEveryRequestIsWithTheRoute() async throws {
        let s = try await Served()
        defer {
            s.release()
            Task { await s.server.stop() }
        }
        let (busy, after) = try await blocking {
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            let request = "GET /hold HTTP/1.1\r\n\r\n"
            for _ in 0..<LoopbackHTTPServer.connectionLimit {
                let fd = try LoopbackSocket.connected(port: s.port)
                _ = send(fd, request, request.utf8.count, Int32(MSG_NOSIGNAL))
                held.append(fd)
            }
            let deadline = ContinuousClock.now + .seconds(60)
            while s.calls < LoopbackHTTPServer.connectionLimit, ContinuousClock.now < deadline { usleep(5_000) }
            let busy = try Self.get(s.port, "/x")
            s.release()
            var after = try Self.get(s.port, "/x")
            while after?.status == 503, ContinuousClock.now < deadline {  // until the held routes answer
                usleep(5_000)
                after = try Self.get(s.port, "/x")
            }
            return (busy, after)
        }
        #expect(busy?.status == 503 && busy?.body.hasPrefix("503 busy: \(LoopbackHTTPServer.connectionLimit) connections") == true, "\(String(describing: busy))")
        #expect(after?.status == 200 && after?.body == "hello GET /x  0", "\(String(describing: after))")
        #expect(s.calls == LoopbackHTTPServer.connectionLimit + 1)  // the 32 held and the one after; no refused one
    }

    /// A connection given a descriptor at ``DescriptorLimit/ceiling`` is closed unanswered, as a run's log is: accepted
    /// connections used up the 16 descriptors kept for libdispatch, which kills a process that has none left.
    @Test func aConnectionPastTheDescriptorCeilingIsClosedUnanswered() async throws {
        let s = try await Served(descriptorCeiling: 0)  // every number is at or past it
        defer { Task { await s.server.stop() } }
        let answer = try await blocking { try Self.get(s.port, "/x") }
        #expect(answer == nil)
        #expect(s.calls == 0)
    }
}
