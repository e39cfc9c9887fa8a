import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// One connected stream socket (Unix or TCP) carrying newline-terminated lines (JSON objects, one per line) in blocking mode.
///
/// Ownership rule, which is what keeps descriptors from being reused under a reader's feet: exactly one
/// thread reads (through a ``LineReader``) and that same owner calls ``close()`` when it is done. Any thread
/// may ``write(_:)`` (writes are serialized so lines never interleave) and any thread may call
/// ``shutdown()``, which wakes a blocked reader or writer without releasing the descriptor.
final class LineConnection: Sendable {
    /// The bound on one line, newline excluded. The protocol's requests are a few hundred bytes; a task
    /// definition is a few KiB. Anything larger is a misbehaving peer and must not grow memory without bound.
    static let maxLineLength = 1 << 20

    let fd: Int32
    /// `true` once the descriptor is closed. Guarded separately from writes so ``shutdown()`` never waits
    /// behind a writer blocked on a full socket buffer (it is what unblocks that writer).
    private let closed = Mutex(false)
    /// Serializes writes (and ``close()`` against an in-progress write).
    private let writeLock = Mutex(())

    init(fd: Int32) {
        self.fd = fd
        Socket.setNoDelay(fd)
    }

    /// Connects to `endpoint`. Throws `KeijiError(.conflict, …)` when nothing listens there (the caller turns
    /// that into a message naming the missing service) and `.io` for anything else.
    static func connect(to endpoint: BusEndpoint, what: String) throws -> LineConnection {
        let fd = try Socket.makeStream(for: endpoint, what: what)
        while true {
            let result: Int32
            do {
                result = try Socket.withAddress(endpoint) { Glibc.connect(fd, $0, $1) }
            } catch {
                Socket.closeRetryingNothing(fd)
                throw error
            }
            if result == 0 { break }
            let code = errno
            if code == EINTR { continue }
            Socket.closeRetryingNothing(fd)
            // ENOENT: no socket file (the bus never ran, or stopped and removed it).
            if code == ECONNREFUSED || code == ENOENT {
                throw KeijiError(.conflict, "nothing listens on \(endpoint) (\(what))")
            }
            throw KeijiError(.io, "cannot connect to \(endpoint) (\(what)): \(Socket.errorText(code))")
        }
        return LineConnection(fd: fd)
    }

    /// A reader for the owning thread.
    func makeReader() -> LineReader { LineReader(fd: fd, limit: Self.maxLineLength) }

    /// Writes `line` plus a newline, entirely or not at all as far as callers are concerned. Returns `false`
    /// if the connection is closed, shut down, or the peer went away (never raises SIGPIPE).
    @discardableResult
    func write(_ line: some Collection<UInt8>, whileLocked prelude: () -> Void = {}) -> Bool {
        var bytes = Array(line)
        bytes.append(UInt8(ascii: "\n"))
        return writeExactly(bytes, whileLocked: prelude)
    }

    /// Writes `bytes` as they are, no newline added (``write(_:whileLocked:)`` without the framing; tests send
    /// partial lines with it). The descriptor is only used under the write lock and while not closed, so a
    /// write racing ``close()`` can never reach another socket that reused the number.
    @discardableResult
    func writeExactly(_ bytes: [UInt8], whileLocked prelude: () -> Void = {}) -> Bool {
        writeLock.withLock { _ -> Bool in
            prelude()
            if closed.withLock({ $0 }) { return false }
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { raw in
                    send(fd, raw.baseAddress! + done, raw.count - done, Socket.sendFlags)
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return true
        }
    }

    /// Wakes every blocked `recv`/`send` on this socket (they return 0 or an error) and tells the peer we
    /// are gone. Idempotent, callable from any thread; the descriptor stays allocated until ``close()``.
    func shutdown() {
        closed.withLock { isClosed in
            if !isClosed { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Stops sending (the peer reads EOF after what was written) but keeps receiving.
    func finishWriting() {
        closed.withLock { isClosed in
            if !isClosed { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
        }
    }

    /// Releases the descriptor. Owner only, after its last read.
    func close() {
        shutdown()
        writeLock.withLock { _ in
            let wasClosed = closed.withLock { isClosed -> Bool in
                defer { isClosed = true }
                return isClosed
            }
            if !wasClosed { Socket.closeRetryingNothing(fd) }
        }
    }

    /// Whether the peer has closed or reset the connection, without blocking or consuming data. A cheap
    /// last check before handing a command to a connection, on top of the reader noticing EOF.
    /// The poll runs under the `closed` lock (it never blocks), so it cannot look at a socket that reused
    /// the number after ``close()``.
    func peerHasClosed() -> Bool {
        #if os(Linux)
        let rdhup: Int16 = 0x2000  // POLLRDHUP
        #else
        let rdhup: Int16 = 0
        #endif
        return closed.withLock { isClosed in
            if isClosed { return true }
            var entry = pollfd(fd: fd, events: rdhup, revents: 0)
            guard poll(&entry, 1, 0) > 0 else { return false }
            return entry.revents & (rdhup | Int16(POLLHUP) | Int16(POLLERR) | Int16(POLLNVAL)) != 0
        }
    }

    func setReadTimeout(_ timeout: Duration?) { Socket.setTimeout(fd, SO_RCVTIMEO, timeout) }
    func setWriteTimeout(_ timeout: Duration?) { Socket.setTimeout(fd, SO_SNDTIMEO, timeout) }

    /// Reads and discards input until EOF, `budget` bytes, or the read timeout: used before closing after an
    /// error reply, so unread input does not turn our FIN into a RST that could destroy the reply in flight.
    func drain(budget: Int = 8 << 20, timeout: Duration = .seconds(1)) {
        setReadTimeout(timeout)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var left = budget
        while left > 0 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            left -= n
        }
    }
}

/// What ``LineReader/next()`` found.
enum LineRead: Equatable {
    /// One line, without its newline (a trailing `\r` is kept; JSON treats it as whitespace).
    case line([UInt8])
    /// The peer sent more than the limit without a newline. The stream is no longer in sync: close it.
    case tooLong
    /// EOF, reset, shutdown, or read timeout.
    case closed
}

/// Splits a socket's byte stream into lines, holding at most about one line plus one read chunk in memory.
/// Not thread-safe: it belongs to the connection's owning thread.
///
/// Reads land in one scratch buffer allocated once per reader and only the bytes received are appended,
/// and newlines are found with `memchr`: a line costs work proportional to its length, not to the chunk
/// size (a 64 KiB fill and trim per read cost ~100 ms in a debug build, and a handshake reads three lines).
struct LineReader {
    let fd: Int32
    let limit: Int
    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var start = 0
    /// Where to resume looking for a newline (bytes before it were already scanned).
    private var scanned = 0
    private var scratch: [UInt8] = []
    private static let chunk = 64 << 10

    init(fd: Int32, limit: Int) {
        self.fd = fd
        self.limit = limit
    }

    mutating func next() -> LineRead {
        while true {
            if let newline = nextNewline() {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                scanned = start
                compact()
                return line.count > limit ? .tooLong : .line(line)
            }
            scanned = buffer.count
            if buffer.count - start > limit { return .tooLong }
            compact()
            if scratch.isEmpty {
                // Uninitialized on purpose: recv fills what is read and nothing else is ever looked at.
                scratch = Array(unsafeUninitializedCapacity: Self.chunk) { _, count in count = Self.chunk }
            }
            var n: Int
            repeat {
                n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            } while n < 0 && errno == EINTR
            if n <= 0 { return .closed }
            scratch.withUnsafeBufferPointer { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: $0[..<n])) }
        }
    }

    /// The index of the first newline at or after `scanned`, if any.
    private func nextNewline() -> Int? {
        guard scanned < buffer.count else { return nil }
        return buffer.withUnsafeBytes { raw -> Int? in
            guard let found = memchr(raw.baseAddress! + scanned, Int32(UInt8(ascii: "\n")), raw.count - scanned) else { return nil }
            return raw.baseAddress!.distance(to: UnsafeRawPointer(found))
        }
    }

    /// Drops consumed bytes once they are the larger part of the buffer (amortized O(1) per byte).
    private mutating func compact() {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            scanned -= start
            start = 0
        }
    }
}
