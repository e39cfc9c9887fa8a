import CSocket
import Foundation
import KeijiBus
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The HTTP/1.1 server on 127.0.0.1 that the metrics endpoint and the dashboard share: one request per
/// connection, every read and write bounded in size and time, on threads of its own.
///
/// Any local user can reach a loopback port, logged in or not, so nothing a client sends may cost the scheduler
/// more than a little: FlyingFox, which served here before, read a header line a byte at a time and compared
/// its tail after each byte, with no limit and on the engine's cooperative pool: two 128 KB header lines stopped
/// every firing for 45 s, and 20,000 idle connections ended its accept loop for good. Here a request's head is at
/// most ``headLimitBytes`` (431 past it), its body ``bodyLimitBytes`` (413), the whole request must arrive within
/// ``requestDeadline`` (408), at most ``connectionLimit`` connections are served at once, and a failed `accept` (out
/// of descriptors) is waited out, never fatal, and a connection that got a descriptor at ``DescriptorLimit/ceiling`` is
/// closed at once (libdispatch kills a process left without descriptors). Past the limit a new connection closes the
/// oldest one already answered (its answer still being sent or lingering), else the oldest still sending its request,
/// as the bus does with unauthenticated ones: answered 503, 40 connections that never finished a request (no token
/// needed) kept the owner's Prometheus scrapes out for as long as they were held, and so did 32 complete requests
/// whose 401s were never read, sent again every second. Only when every connection's request is with the route does
/// the newcomer get 503. Blocking I/O runs on this server's own threads;
/// only the route (`respond`) runs on the pool. A port that cannot be bound does not stop the scheduler:
/// ``start()`` says why.
final class LoopbackHTTPServer: Sendable {
    let port: UInt16
    /// How long a route may take before the client gets 503 (the route goes on; its answer is dropped).
    private let timeout: Duration
    /// ``requestDeadline``, or a test's own.
    private let deadline: Duration
    private let respond: @Sendable (HTTPRequest) async -> HTTPResponse
    /// ``DescriptorLimit/ceiling``, or a test's own.
    private let descriptorCeiling: Int
    private let state = Mutex(State())

    private struct State {
        var listener: Int32?
        var stopped = false
        /// Connections being served, so ``stop()`` can wake their threads.
        var connections: Set<Int32> = []
        /// Those of `connections` still reading their request, oldest first: a newcomer evicts these after `answered`.
        var reading: [Int32] = []
        /// Those of `connections` whose answer is being sent or lingering, oldest first: evicted before `reading`, so
        /// answers nobody reads cannot keep a newcomer out.
        var answered: [Int32] = []
        /// When a connection past the descriptor ceiling was last logged: once a minute at most.
        var ceilingLogged: ContinuousClock.Instant?
    }

    /// The largest request head (request line and header fields): a browser's is well under 2 KB with cookies.
    static let headLimitBytes = 16 * 1024
    /// The largest request body a route sees: the dashboard's forms carry a token or two, nothing else takes one.
    static let bodyLimitBytes = 8 * 1024
    /// From the connection's accept to its request's last byte.
    static let requestDeadline: Duration = .seconds(10)
    static let connectionLimit = 32
    /// Bounds the whole answer's writing: a client that stops reading cannot hold a thread.
    static let writeTimeout: Duration = .seconds(10)

    init(port: UInt16, timeout: Duration, requestDeadline: Duration = requestDeadline, descriptorCeiling: Int = DescriptorLimit.ceiling,
         respond: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) {
        self.port = port
        self.timeout = timeout
        self.deadline = requestDeadline
        self.descriptorCeiling = descriptorCeiling
        self.respond = respond
    }

    /// Binds and starts accepting. Returns nil once listening, or why it could not (`bind: address already in use`, and
    /// who holds the port if ``PortHolder`` can tell).
    func start() async -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "socket: \(Socket.errorText().lowercased())" }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Socket.loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let code = errno
            var problem = "\(bound == 0 ? "listen" : "bind"): \(Socket.errorText(code).lowercased())"
            _ = close(fd)
            if code == EADDRINUSE, let holder = PortHolder.describe(port: port) { problem += "; " + holder }
            return problem
        }
        let started = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.listener = fd
            return true
        }
        guard started else {
            _ = close(fd)
            return "the server was stopped"
        }
        DedicatedThread.start("keiji http accept \(port)") { [self] in acceptConnections(on: fd) }
        return nil
    }

    /// Stops accepting and wakes every connection's thread; returns at once, never waiting on a route (a slow
    /// page must not hold up the scheduler's stop).
    func stop() async {
        state.withLock { state in
            state.stopped = true
            if let listener = state.listener { _ = shutdown(listener, Int32(SHUT_RDWR)) }
            state.listener = nil  // closed by its thread: the number may be reused
            for fd in state.connections { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptConnections(on listener: Int32) {
        defer { _ = close(listener) }
        while true {
            let fd = keiji_accept_cloexec(listener)
            let code = errno
            if state.withLock({ $0.stopped }) {
                if fd >= 0 { _ = close(fd) }
                return
            }
            guard fd >= 0 else {
                switch code {
                case EINTR, ECONNABORTED, EPROTO: continue
                default: usleep(100_000); continue  // out of descriptors or memory: wait for some to come back
                }
            }
            // The kernel gives the lowest free number: one at the ceiling means the reserve is being used up.
            if Int(fd) >= descriptorCeiling {
                _ = close(fd)
                let now = ContinuousClock.now
                let log = state.withLock { state -> Bool in
                    guard state.ceilingLogged.map({ now - $0 >= .seconds(60) }) ?? true else { return false }
                    state.ceilingLogged = now
                    return true
                }
                if log {
                    StandardError.write("keiji-scheduler: 127.0.0.1:\(port): connections closed unanswered: "
                        + DescriptorLimit.atCeiling(descriptorCeiling) + "\n")
                }
                continue
            }
            let admitted = state.withLock { state -> Bool in
                if state.connections.count >= Self.connectionLimit {
                    // Woken by the shutdown, its thread ends (its descriptor, closed there, is not reused before).
                    let oldest: Int32
                    if !state.answered.isEmpty {
                        oldest = state.answered.removeFirst()
                    } else if !state.reading.isEmpty {
                        oldest = state.reading.removeFirst()
                    } else {
                        return false
                    }
                    state.connections.remove(oldest)
                    _ = shutdown(oldest, Int32(SHUT_RDWR))
                }
                state.connections.insert(fd)
                state.reading.append(fd)
                return true
            }
            guard admitted else {
                // Answered from this thread, so never waiting: what the client sent so far is read (a close with
                // unread bytes would reset the connection and lose the answer), what it has not sent is not.
                Socket.setTimeout(fd, SO_SNDTIMEO, .milliseconds(100))
                Self.send(HTTPResponse.text(503, "503 busy: \(Self.connectionLimit) connections are being served; try again\n").encoded(head: false),
                          to: fd, until: .now + .milliseconds(100))
                _ = shutdown(fd, Int32(SHUT_WR))
                var scratch = [UInt8](repeating: 0, count: 4096)
                while recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
                _ = close(fd)
                continue
            }
            DedicatedThread.start("keiji http connection") { [self] in
                serve(fd)
                state.withLock { state in
                    state.connections.remove(fd)
                    state.reading.removeAll { $0 == fd }
                    state.answered.removeAll { $0 == fd }
                }
                _ = close(fd)
            }
        }
    }

    /// Reads one request within the limits, answers it, and lingers briefly so the client reads the answer
    /// before the close (a close with unread bytes would reset the connection and lose it).
    private func serve(_ fd: Int32) {
        let deadline = ContinuousClock.now + self.deadline
        var head = false  // set once the request is known to be a HEAD: a refusal's answer keeps its body
        let response: HTTPResponse
        do {
            let (parsed, body) = try readRequest(fd, until: deadline)
            state.withLock { $0.reading.removeAll { $0 == fd } }  // no longer evictable: it is being answered
            head = parsed.method == "HEAD"
            response = answer(parsed.request(body: body))
        } catch {
            response = .text(error.status, error.message.hasPrefix("\(error.status)") ? error.message + "\n" : "\(error.status) \(error.message)\n")
        }
        state.withLock { state in  // evictable first: a client that does not read its answer must not hold the slot
            state.reading.removeAll { $0 == fd }
            if state.connections.contains(fd) { state.answered.append(fd) }
        }
        Self.send(response.encoded(head: head), to: fd, until: .now + Self.writeTimeout)
        _ = shutdown(fd, Int32(SHUT_WR))
        let lingerEnd = ContinuousClock.now + .seconds(1)
        var scratch = [UInt8](repeating: 0, count: 4096)
        var drained = 0
        while drained < 64 * 1024, case let left = lingerEnd - .now, left > .zero {
            Socket.setTimeout(fd, SO_RCVTIMEO, left)
            let n = recv(fd, &scratch, scratch.count, 0)
            if n <= 0 { break }
            drained += n
        }
    }

    private func readRequest(_ fd: Int32, until deadline: ContinuousClock.Instant) throws(HTTPRequestHead.Refusal) -> (HTTPRequestHead, Data) {
        var bytes: [UInt8] = []
        var scanned = 0
        var chunk = [UInt8](repeating: 0, count: 4096)
        func receive() throws(HTTPRequestHead.Refusal) {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw .init(status: 408, message: "the request did not arrive within \(self.deadline)") }
            Socket.setTimeout(fd, SO_RCVTIMEO, left)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n > 0 { bytes += chunk[0..<n]; return }
            if n < 0, errno == EINTR { return }
            if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                throw .init(status: 408, message: "the request did not arrive within \(self.deadline)")
            }
            throw .init(status: 400, message: "the connection closed before the request ended")
        }
        var end: Int?
        while end == nil {
            try receive()
            // The blank line may straddle two reads: look again from three bytes before the new ones.
            for i in max(0, scanned - 3)..<max(0, bytes.count - 3) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
                end = i
                break
            }
            scanned = bytes.count
            if end == nil, bytes.count > Self.headLimitBytes {
                throw .init(status: 431, message: "the request's line and header fields are over \(Self.headLimitBytes) bytes")
            }
        }
        guard let end, end <= Self.headLimitBytes else {
            throw .init(status: 431, message: "the request's line and header fields are over \(Self.headLimitBytes) bytes")
        }
        let head = try HTTPRequestHead.parse(bytes[0..<end])
        let length = try head.contentLength(limit: Self.bodyLimitBytes)
        while bytes.count - (end + 4) < length { try receive() }
        return (head, Data(bytes[(end + 4)..<(end + 4 + length)]))
    }

    /// The route's answer, or 503 if it takes longer than ``timeout`` (waited for on this thread, not the pool).
    private func answer(_ request: HTTPRequest) -> HTTPResponse {
        let answered = ReplyWaiter<HTTPResponse>()
        let respond = respond
        Task { answered.resolve(await respond(request)) }
        return answered.wait(timeout: timeout) ?? .text(503, "503 the scheduler did not answer within \(timeout)\n")
    }

    /// Writes all of `data` unless `deadline` passes first: each write's own timeout is what is left of it, so a
    /// client that reads a byte at a time cannot hold the thread past it.
    private static func send(_ data: Data, to fd: Int32, until deadline: ContinuousClock.Instant) {
        data.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count, case let left = deadline - .now, left > .zero {
                Socket.setTimeout(fd, SO_SNDTIMEO, left)
                let n = Glibc.send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return }
                sent += n
            }
        }
    }

}
