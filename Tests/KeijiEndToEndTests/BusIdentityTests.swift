import CSocket
import Foundation
import Synchronization
import KeijiTestSupport
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The CLI only talks to a bus that proves it is this user's, and two users (HOMEs) on one machine each get
/// their own bus: real binaries, temporary HOMEs.
@Suite(.serialized)
struct BusIdentityTests {
    /// A HOME with the keiji binaries; `tcpPorts` nil means the default transport (Unix sockets).
    struct Home {
        let path: String
        let environment: [String: String]
        let binaries: String

        init(tcpPorts: (push: Int, pull: Int)?) throws {
            path = FileManager.default.temporaryDirectory.path + "/keiji-id-" + UUID().uuidString.prefix(8)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            var env = ProcessInfo.processInfo.environment
            env["HOME"] = path
            env["NO_COLOR"] = "1"
            env["KEIJI_BUS_PUSH_PORT"] = nil
            env["KEIJI_BUS_PULL_PORT"] = nil
            if let tcpPorts {
                env["KEIJI_BUS_PUSH_PORT"] = String(tcpPorts.push)
                env["KEIJI_BUS_PULL_PORT"] = String(tcpPorts.pull)
            }
            environment = env
            binaries = try #require(WalkthroughTests.Session.binaryDirectory(), "the keiji executables are built with the tests")
        }

        func keiji(_ arguments: String...) async throws -> WalkthroughTests.Session.Result {
            try await offThePool { try self.runBlocking(arguments) }
        }

        func runBlocking(_ arguments: [String]) throws -> WalkthroughTests.Session.Result {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binaries + "/keiji")
            process.arguments = arguments
            process.environment = environment
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return .init(status: process.terminationStatus, stdout: stdout, stderr: stderr)
        }

        func cleanUp() {
            _ = try? runBlocking(["system", "--stop"])
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    func eventually(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return (try? await condition()) == true
    }

    @Test func aFakeBusOnTheCLIsPortLearnsNothingAndTheCommandStaysOurs() async throws {
        let fake = try SquatterListener()
        defer { fake.stop() }
        let home = try Home(tcpPorts: (Int(fake.port), Int(fake.port) + 1))
        defer { home.cleanUp() }
        #expect(try await home.keiji("init").status == 0)
        let token = try String(contentsOfFile: home.path + "/.keiji/bus.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        // No scheduler of ours: the CLI says the endpoint is not our bus and writes into its own journal.
        var r = try await home.keiji("task", "--create", "--name=ping", "--desc=ping", "--command", "echo ping", "--every", "1h")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("written offline"))
        #expect(r.stderr.contains("127.0.0.1:\(fake.port) is not this user's keiji-bus"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")

        // Our scheduler holds the journal: the command cannot go offline, so the CLI fails, still telling
        // the fake nothing.
        r = try await home.keiji("system", "--start", "--scheduler")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        r = try await home.keiji("task", "--disable", "--name=ping")
        #expect(r.status != 0)
        #expect(r.stderr.contains("not this user's keiji-bus") && r.stderr.contains("not reachable through keiji-bus"), "\(r.stderr)")

        let seen = fake.receivedText
        #expect(fake.connections >= 2)
        #expect(seen.contains(#""hello":"client""#))
        #expect(!seen.contains(token))
        #expect(!seen.contains("ping") && !seen.contains("cmd") && !seen.contains("proof"), "\(seen)")
    }

    @Test func twoHomesOnOneMachineBothStartAndBothTakeCommands() async throws {
        let homes = [try Home(tcpPorts: nil), try Home(tcpPorts: nil)]
        defer { homes.forEach { $0.cleanUp() } }
        for home in homes {
            #expect(try await home.keiji("init").status == 0)
            #expect(try await home.keiji("task", "--create", "--name=ping", "--desc=ping", "--command", "echo ping", "--every", "1h").status == 0)
        }
        for home in homes {
            let r = try await home.keiji("system", "--start")
            #expect(r.status == 0 && r.stdout.contains("bus: started") && r.stdout.contains("scheduler: started"), "\(r.stdout)\(r.stderr)")
        }
        for home in homes {
            // The scheduler connects to its bus shortly after starting; until then a command goes nowhere
            // useful (the journal is locked), so wait for the acknowledged path.
            #expect(await eventually {
                let r = try await home.keiji("task", "--disable", "--name=ping")
                return r.status == 0 && r.stdout.contains("acknowledged by the scheduler")
            })
            let r = try await home.keiji("task", "--get", "--name=ping")
            #expect(r.stdout.contains("IsDisabled: true"), "\(r.stdout)")
        }
    }
}

/// Something squatting on a loopback port: records what it is sent and answers each connection's first line
/// with a handshake challenge whose proof is made up.
final class SquatterListener: Sendable {
    let fd: Int32
    let port: UInt16
    private let received = Mutex<[UInt8]>([])
    private let accepted = Mutex(0)
    /// `false` once the accept loop has closed the socket: from then on the number may belong to another test.
    private let listening = Mutex(true)

    init() throws {
        (fd, port) = try LoopbackSocket.listeningOnAFreePort(in: 20000..<32000)
        let thread = Thread { [self] in
            while true {
                let client = keiji_accept_cloexec(fd)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    // Closed here, after the last accept, not in stop(): an accept after that close could take a
                    // connection from another test's listener that got the number.
                    listening.withLock { isListening in
                        isListening = false
                        close(fd)
                    }
                    return
                }
                accepted.withLock { $0 += 1 }
                Thread { [self] in serve(client) }.start()
            }
        }
        thread.start()
    }

    private func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var answered = false
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            received.withLock { $0 += chunk[..<n] }
            if !answered && chunk[..<n].contains(UInt8(ascii: "\n")) {
                answered = true
                let line = #"{"nonce":"\#(String(repeating: "ab", count: 32))","proof":"\#(String(repeating: "cd", count: 32))"}"# + "\n"
                _ = line.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            }
        }
        close(client)
    }

    var receivedText: String { String(decoding: received.withLock { $0 }, as: UTF8.self) }
    var connections: Int { accepted.withLock { $0 } }
    /// Wakes the accept loop, which closes the listener (unless it has already).
    func stop() {
        listening.withLock { isListening in
            if isListening { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }
}
