import Foundation
import KeijiCore
import Synchronization
import Testing

@testable import KeijiBus

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

let testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/// An in-process bus on TCP ports the kernel picks (port 0), so parallel tests never collide.
/// The request timeout is generous: the fake scheduler's handler runs on this process's cooperative pool,
/// which other tests running in parallel can keep busy for seconds; the test of the timeout passes its own.
func startBus(requestTimeout: Duration = .seconds(30), handshakeDeadline: Duration = BusHandshake.deadline,
              idleTimeout: Duration = BusServer.idleClientTimeout, log: @escaping @Sendable (String) -> Void = { _ in }) throws -> BusServer {
    let server = BusServer(push: .tcp(port: 0), pull: .tcp(port: 0), token: testToken, requestTimeout: requestTimeout,
                           handshakeDeadline: handshakeDeadline, idleTimeout: idleTimeout, log: log)
    try server.start()
    return server
}

/// Polls `condition` every 10 ms until it holds or `limit` passes (it returns as soon as it holds; the
/// limit is only reached on failure, so it is generous for a loaded 2-core machine). 90 s: in a full suite on two
/// cores with one kept busy, the journal's every-offset tests beside the 100,000-task test kept this process's
/// cooperative pool so busy that a relay over Unix sockets took over 30 s to connect (it connects in milliseconds
/// alone, and in 90–107 s of a full suite the whole test passed).
func eventually(within limit: Duration = .seconds(90), _ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

/// A thread-safe list of what handlers saw.
final class Recorder: Sendable {
    private let items = Mutex<[String]>([])
    func add(_ item: String) { items.withLock { $0.append(item) } }
    var all: [String] { items.withLock { $0 } }
}

/// A one-way switch a test flips to let a waiting handler go on.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// A `SchedulerBusLink` running in its own task: the fake scheduler. Its task is cancelled when the test lets
/// go of it, also when the test ends early on a thrown error: a link left running would keep reconnecting to
/// its bus's pull port, which the kernel may hand to a later test's bus (port 0), and take over as that
/// test's scheduler (every test link knows the same token).
final class RunningLink: Sendable {
    let link: SchedulerBusLink
    let task: Task<Void, Never>

    init(link: SchedulerBusLink, task: Task<Void, Never>) {
        self.link = link
        self.task = task
    }

    deinit { task.cancel() }

    /// Cancels the link's task (its connection closes) and waits until `run()` has returned.
    func stop() async {
        task.cancel()
        await task.value
    }
}

func startLink(_ server: BusServer, token: String = testToken,
               handler: @escaping @Sendable (BusRequest) async -> BusReply) -> RunningLink {
    let link = SchedulerBusLink(endpoint: server.boundPull, token: token, handler: handler)
    return RunningLink(link: link, task: Task { await link.run() })
}

/// Starts a link and waits until the bus has accepted it.
func connectLink(_ server: BusServer, handler: @escaping @Sendable (BusRequest) async -> BusReply) async throws -> RunningLink {
    let running = startLink(server, handler: handler)
    // Generous: on a loaded 2-core CI machine thread start-up and the hello can take seconds; it returns at once when fast.
    let connected = await eventually(within: .seconds(60)) { running.link.isConnected && server.schedulerConnected }
    if !connected { await running.stop() }
    try #require(connected)
    return running
}

func request(_ id: String, _ cmd: String = "trigger", task: String = "nightly") -> BusRequest {
    BusRequest(id: id, cmd: cmd, taskID: task)
}

/// A protocol-level client: raw bytes out, lines in, all blocking calls on their own threads.
final class RawClient: Sendable {
    let connection: LineConnection
    let reader: Mutex<LineReader>

    private init(_ connection: LineConnection) {
        self.connection = connection
        // Generous: on a loaded 2-core machine the bus can take seconds to read a MiB and answer; a read that
        // times out ends the test as "cancelled" (anEndlessLineWithoutNewlineIsCutOffAtOneMiB did, in CI).
        connection.setReadTimeout(.seconds(30))
        connection.setWriteTimeout(.seconds(30))
        reader = Mutex(connection.makeReader())
    }

    static func connect(_ endpoint: BusEndpoint) async throws -> RawClient {
        try await DedicatedThread.run("test raw connect") { RawClient(try LineConnection.connect(to: endpoint, what: "test")) }
    }

    /// Connects and runs the handshake as `role` with `token`, as the CLI or the scheduler would: on one
    /// thread, like they do. (Connecting on one thread and saying hello on another left a hop through the
    /// cooperative pool inside the bus's handshake deadline; with the pool busy that hop took longer than
    /// the deadline and the bus rightly closed the silent connection.)
    static func authenticated(_ endpoint: BusEndpoint, as role: BusRole = .client, token: String = testToken) async throws -> RawClient {
        try await DedicatedThread.run("test raw handshake") {
            let raw = RawClient(try LineConnection.connect(to: endpoint, what: "test"))
            do {
                try raw.reader.withLock {
                    try BusHandshake.authenticate(raw.connection, reader: &$0, role: role, token: token, endpoint: endpoint,
                                                  timeout: .seconds(30))
                }
            } catch {
                raw.close()
                throw error
            }
            return raw
        }
    }

    /// Writes `bytes` exactly as given (no newline added). Through the connection's own write, never the bare
    /// descriptor: a send still on its way when the test closes this client (a dripping peer's last byte) then
    /// finds it closed, instead of a socket of a parallel test that took the number (it once cut into a
    /// concurrent client's hello, and that client's bus answered with a refusal).
    @discardableResult
    func sendRaw(_ bytes: [UInt8]) async -> Bool {
        let connection = connection
        return (try? await DedicatedThread.run("test raw send") { connection.writeExactly(bytes) }) ?? false
    }

    @discardableResult
    func sendLine(_ text: String) async -> Bool { await sendRaw(Array((text + "\n").utf8)) }

    func readLine() async -> LineRead {
        (try? await DedicatedThread.run("test raw read") { [self] in reader.withLock { $0.next() } }) ?? .closed
    }

    /// The next line as a reply; fails the test if there is none or it is not one.
    func readReply(sourceLocation: SourceLocation = #_sourceLocation) async throws -> BusReply {
        let read = await readLine()
        guard case .line(let line) = read else {
            Issue.record("expected a reply line, got \(read)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        return try JSONDecoder().decode(BusReply.self, from: Data(line))
    }

    /// Wakes a read in progress, waits for it to let go of the reader, then releases the descriptor: a read
    /// never runs on a number another socket has taken.
    func close() {
        connection.shutdown()
        reader.withLock { _ in connection.close() }
    }
}

/// A port that is free now, chosen below Linux's ephemeral range (32768–60999) so no outgoing connection
/// of a concurrent test can take it before the process under test binds it.
func freePort() throws -> UInt16 {
    for _ in 0..<200 {
        let candidate = UInt16.random(in: 20000..<32000)
        if let listener = try? BusListener(.tcp(port: candidate), role: "probe") {
            listener.close()
            return candidate
        }
    }
    throw KeijiError(.io, "no free port found")
}

/// A temporary HOME.
func temporaryHome() throws -> String {
    let path = FileManager.default.temporaryDirectory.path + "/keiji-bus-test-" + UUID().uuidString.prefix(8)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func fileMode(_ path: String) -> mode_t? {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
}

/// A listener that is not our bus: it records every byte it receives and answers each connection's first
/// line with `answer(firstLine)`, then keeps reading (and recording) until the peer goes away.
final class FakeBus: Sendable {
    let listener: BusListener
    private let received = Mutex<[UInt8]>([])
    private let accepted = Mutex(0)
    private let ended = Mutex(0)

    init(_ endpoint: BusEndpoint = .tcp(port: 0), answer: @escaping @Sendable (_ firstLine: [UInt8]) -> [String]) throws {
        listener = try BusListener(endpoint, role: "fake")
        DedicatedThread.start("fake bus accept") { [self] in
            while case .connection(let connection) = listener.accept() {
                accepted.withLock { $0 += 1 }
                DedicatedThread.start("fake bus connection") { [self] in serve(connection, answer) }
            }
            listener.close()
        }
    }

    private func serve(_ connection: LineConnection, _ answer: @Sendable ([UInt8]) -> [String]) {
        connection.setReadTimeout(.seconds(5))
        var pending: [UInt8] = []
        var answered = false
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let bytes = Array(chunk[..<n])
            received.withLock { $0 += bytes }
            if !answered {
                pending += bytes
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    answered = true
                    for line in answer(Array(pending[..<newline])) { connection.write(Array(line.utf8)) }
                }
            }
        }
        connection.close()
        ended.withLock { $0 += 1 }
    }

    var endpoint: BusEndpoint { listener.endpoint }
    /// Everything any peer sent, as text.
    var receivedText: String { String(decoding: received.withLock { $0 }, as: UTF8.self) }
    var connections: Int { accepted.withLock { $0 } }
    /// Connections whose peer closed (or went silent for 5 s): all they sent is in ``receivedText``.
    var connectionsEnded: Int { ended.withLock { $0 } }
    func stop() { listener.shutdown() }
}

/// A challenge line with a well-formed nonce and a proof made with the wrong token.
func forgedChallenge(_ helloLine: [UInt8], role: BusRole = .client) -> String {
    let clientNonce = (try? BusWire.decode(BusHandshake.Hello.self, helloLine))?.nonce ?? BusHandshake.makeNonce()
    let nonce = BusHandshake.makeNonce()
    let proof = BusHandshake.proof(token: "not-the-token", speaker: "bus", role: role, clientNonce: clientNonce, busNonce: nonce)
    return String(decoding: BusWire.encode(BusHandshake.Challenge(nonce: nonce, proof: proof)), as: UTF8.self)
}
