import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a test's socket call could not do.
public struct LoopbackSocketError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// Raw sockets on 127.0.0.1 for tests: listeners that hold a port, and connections that send exactly the bytes a test
/// wants (the HTTP server's tests send oversized and malformed requests, which no HTTP client library would).
public enum LoopbackSocket {
    /// A socket listening on 127.0.0.1:`port` (0: the kernel picks one), and its port. The caller closes it.
    public static func listening(port: UInt16 = 0, backlog: Int32 = 16) throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LoopbackSocketError(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        address.sin_port = port.bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, backlog) == 0 else {
            close(fd)
            throw LoopbackSocketError(description: "cannot listen on 127.0.0.1:\(port)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A socket listening on a port chosen at random in `range`, and the port. A range below Linux's ephemeral ports
    /// (32768–60999) keeps the number from being handed to another test's outgoing connection or port-0 listener
    /// once this one closes. No port is handed out twice in this process: a test closes the listener and has a
    /// scheduler bind the port later, and two tests given the same one at once (a loaded soak) had the second's
    /// scheduler go without its dashboard while the test logged in at the first's, with the wrong token.
    public static func listeningOnAFreePort(in range: Range<UInt16>) throws -> (fd: Int32, port: UInt16) {
        for _ in 0..<200 {
            let port = UInt16.random(in: range)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if let listener = try? listening(port: port) { return listener }
        }
        throw LoopbackSocketError(description: "no free port in \(range.lowerBound)-\(range.upperBound - 1)")
    }

    /// The ports ``listeningOnAFreePort(in:)`` has tried, which it never tries again.
    private static let handedOut = Mutex<Set<UInt16>>([])

    /// A socket connected to 127.0.0.1:`port`; a read waits at most `receiveTimeoutSeconds`.
    public static func connected(port: UInt16, receiveTimeoutSeconds: Int = 30) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LoopbackSocketError(description: "socket: errno \(errno)") }
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        address.sin_port = port.bigEndian
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else {
            close(fd)
            throw LoopbackSocketError(description: "cannot connect to 127.0.0.1:\(port)")
        }
        return fd
    }
}

/// An HTTP/1.1 answer as a test reads it.
public struct HTTPAnswer: Sendable, CustomStringConvertible {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: String

    public init(status: Int, headers: [String: String], body: String) {
        (self.status, self.headers, self.body) = (status, headers, body)
    }

    public var description: String { "\(status) \(headers) \(body)" }
}

/// One HTTP/1.1 exchange per connection, as keiji's loopback HTTP server serves them.
public enum HTTPTestClient {
    /// Sends `bytes` on a fresh connection and reads the answer; nil when none came back. Sending stops early when the
    /// server answers and closes first (it may refuse a request before reading all of it).
    public static func exchange(_ port: UInt16, _ bytes: [UInt8], receiveTimeoutSeconds: Int = 30, untilClose: Bool = false) throws -> HTTPAnswer? {
        let fd = try LoopbackSocket.connected(port: port, receiveTimeoutSeconds: receiveTimeoutSeconds)
        defer { close(fd) }
        bytes.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count {
                let n = send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                sent += n
            }
        }
        return read(fd, untilClose: untilClose)
    }

    /// Reads an answer: until its `Content-Length` is in, or until the server closes (`untilClose`, for `HEAD`,
    /// whose length is the body's that was not sent); nil when no head came back.
    public static func read(_ fd: Int32, untilClose: Bool = false) -> HTTPAnswer? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[0..<n]
            if !untilClose, let answer = parse(received), let length = answer.headers["content-length"].flatMap({ Int($0) }),
               answer.body.utf8.count >= length {
                return answer
            }
        }
        return parse(received)
    }

    /// The answer in `bytes`, once its head is complete.
    public static func parse(_ bytes: [UInt8]) -> HTTPAnswer? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let status = lines.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPAnswer(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
