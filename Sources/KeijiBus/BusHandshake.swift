import Foundation
import KeijiCore

/// Who opens a bus connection: the CLI (push endpoint) or the scheduler (pull endpoint).
enum BusRole: String, Sendable {
    case client, scheduler
}

/// The mutual challenge–response that opens every bus connection, so the token in `~/.keiji/bus.token`
/// never crosses the wire and each side proves to the other that it knows it.
///
/// ```
/// connector -> bus   {"hello":"client"|"scheduler","nonce":Nc}
/// bus -> connector   {"nonce":Nb,"proof":HMAC(token, "keiji-bus/1|bus|<role>|Nc|Nb")}
/// connector -> bus   {"proof":HMAC(token, "keiji-bus/1|<role>|<role>|Nc|Nb")}      (only if the bus's proof held;
///                    the CLI's request follows in the same write)
/// bus -> connector   {"ok":true}  or  {"ok":false,"code":"unauthorized",…} and close
/// ```
///
/// Nonces are 32 fresh random bytes from each side, so no answer can be replayed on another connection.
/// The speaker's label is in the MAC, so the bus's answer reflected back to it (or a client's answer
/// passed off as a scheduler's) is worth nothing. The bus answers first: a listener that is not our bus
/// (someone holding the port while keiji-bus is down) learns only a nonce and the role, never the token
/// nor a command, and the connector closes as soon as the proof fails. Proofs are compared in constant time.
///
/// Not covered: a relay that holds our endpoint *and* reaches our real bus could pass the handshake through
/// and then see or drop commands; the endpoint itself prevents that (the Unix socket lives in a 0700
/// directory and checks the peer's uid; on TCP the real bus holds the port whenever it runs).
enum BusHandshake {
    static let version = "keiji-bus/1"
    /// How long a connection may take to authenticate before the bus closes it (also bounds the scheduler
    /// link's wait for the bus's answer, so a silent listener cannot hold it). Generous on purpose: a debug
    /// build on a 2-core machine at load 20 took over 10 s to get through two round trips (each hop waits
    /// for a thread to be scheduled), and a short deadline buys nothing against a flood, which the
    /// unauthenticated cap and eviction in ``BusServer`` handle. Tests that exercise the deadline pass
    /// their own short one.
    static let deadline: Duration = .seconds(30)
    static let nonceBytes = 32

    struct Hello: Codable, Sendable {
        var hello: String
        var nonce: String
    }

    struct Challenge: Codable, Sendable {
        var nonce: String
        var proof: String
    }

    struct Answer: Codable, Sendable {
        var proof: String
    }

    /// A fresh nonce: `nonceBytes` from the system's cryptographic generator, hex-encoded.
    static func makeNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(nonceBytes)
        for _ in 0..<(nonceBytes / 8) { withUnsafeBytes(of: generator.next()) { bytes += $0 } }
        return hex(bytes)
    }

    /// Whether `text` has a nonce's shape (lowercase hex of `nonceBytes` bytes).
    static func isNonce(_ text: String) -> Bool {
        text.utf8.count == nonceBytes * 2 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// `speaker`'s proof for a connection opened by `role` with nonces `clientNonce` and `busNonce`.
    static func proof(token: String, speaker: String, role: BusRole, clientNonce: String, busNonce: String) -> String {
        let message = [version, speaker, role.rawValue, clientNonce, busNonce].joined(separator: "|")
        return hex(HMACSHA256.digest(key: Array(token.utf8), message: Array(message.utf8)))
    }

    /// Equal in time independent of where the strings differ (every byte is compared, differences are OR-ed):
    /// a timing oracle must not leak a valid proof byte by byte.
    static func proofsMatch(_ candidate: String, _ expected: String) -> Bool {
        let a = Array(candidate.utf8), b = Array(expected.utf8)
        guard a.count == b.count, !b.isEmpty else { return false }
        return zip(a, b).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - The connecting side (CLI, scheduler)

    /// Runs the handshake as `role`. On return the bus has proved it knows `token` and accepted our proof.
    /// `followUp` (the CLI's one request) goes out in the same write as our proof, which saves a round trip
    /// and is safe: by then the bus has proved itself, and a bus that refuses our proof discards it unread.
    /// - Parameter timeout: how long to wait for the bus's answer (and for each write); set on the socket here.
    /// - Throws: ``BusAuthenticationFailure`` if the other end is not our bus (wrong uid on a Unix socket,
    ///   an answer that is not a valid proof): nothing but the hello was sent to it.
    ///   `KeijiError(.unavailable)` if it closed or stayed silent for `timeout` before answering: nothing but
    ///   the hello was sent either, and silence proves nothing about who listens (a live but overloaded bus
    ///   looks the same), so it is reported as a bus that is not available rather than as an impostor.
    ///   `KeijiError(.conflict)` if our bus refused us or the connection failed after our proof (and the
    ///   follow-up) went out.
    static func authenticate(_ connection: LineConnection, reader: inout LineReader, role: BusRole, token: String,
                             endpoint: BusEndpoint, timeout: Duration, followUp: [UInt8]? = nil) throws {
        if case .unix = endpoint, let uid = Socket.peerUID(connection.fd), uid != getuid() {
            throw BusAuthenticationFailure(endpoint: endpoint, reason: "it belongs to uid \(uid), not to this user")
        }
        connection.setReadTimeout(timeout)
        connection.setWriteTimeout(timeout)
        let started = ContinuousClock.now
        let nonce = makeNonce()
        guard connection.write(BusWire.encode(Hello(hello: role.rawValue, nonce: nonce))) else {
            throw KeijiError(.unavailable, "keiji-bus at \(endpoint) closed the connection before the handshake; nothing was sent to it")
        }
        guard case .line(let line) = reader.next() else {
            let silence = ContinuousClock.now - started >= timeout
                ? "did not answer the handshake within \(timeout)" : "closed the connection without answering the handshake"
            throw KeijiError(.unavailable, "keiji-bus at \(endpoint) \(silence); nothing was sent to it")
        }
        guard let challenge = try? BusWire.decode(Challenge.self, line), isNonce(challenge.nonce) else {
            throw BusAuthenticationFailure(endpoint: endpoint, reason: "its answer is not a keiji-bus handshake: \(BusWire.excerpt(line))")
        }
        let expected = proof(token: token, speaker: "bus", role: role, clientNonce: nonce, busNonce: challenge.nonce)
        let answer = proof(token: token, speaker: role.rawValue, role: role, clientNonce: nonce, busNonce: challenge.nonce)
        guard challenge.nonce != nonce, proofsMatch(challenge.proof, expected) else {
            throw BusAuthenticationFailure(endpoint: endpoint, reason: "its proof does not match ~/.keiji/bus.token")
        }
        var lines = BusWire.encode(Answer(proof: answer))
        if let followUp { lines += [UInt8(ascii: "\n")] + followUp }
        guard connection.write(lines) else {
            throw KeijiError(.conflict, "keiji-bus at \(endpoint) closed the connection during the handshake")
        }
        guard case .line(let verdictLine) = reader.next(), let verdict = try? BusWire.decode(BusReply.self, verdictLine) else {
            throw KeijiError(.conflict, "keiji-bus at \(endpoint) did not finish the handshake")
        }
        guard verdict.ok else {
            throw KeijiError(.conflict, "keiji-bus at \(endpoint) refused us (\(verdict.code?.rawValue ?? "?")): \(verdict.error ?? "")")
        }
    }

    // MARK: - The bus's side

    enum Verdict {
        case authenticated
        /// Send this reply, then close; `reason` is for the bus's log.
        case refused(BusReply, reason: String)
        /// The peer went away, was too slow, or sent an endless line.
        case closed
    }

    /// Reads the hello, answers with the bus's nonce and proof, and checks the connector's proof. Does not
    /// send the final `{"ok":true}`: the caller does, once the connection is ready for traffic.
    static func respond(_ connection: LineConnection, reader: inout LineReader, expecting role: BusRole, token: String) -> Verdict {
        guard case .line(let line) = reader.next() else { return .closed }
        guard let hello = try? BusWire.decode(Hello.self, line), hello.hello == role.rawValue, isNonce(hello.nonce) else {
            return .refused(.failure(BusWire.salvageID(line), .invalid, #"expected {"hello":"\#(role.rawValue)","nonce":…} (see docs/architecture.md, Bus security)"#),
                            reason: "expected a \(role.rawValue) hello")
        }
        let nonce = makeNonce()
        let ours = proof(token: token, speaker: "bus", role: role, clientNonce: hello.nonce, busNonce: nonce)
        let expected = proof(token: token, speaker: role.rawValue, role: role, clientNonce: hello.nonce, busNonce: nonce)
        guard connection.write(BusWire.encode(Challenge(nonce: nonce, proof: ours))) else { return .closed }
        guard case .line(let answerLine) = reader.next() else { return .closed }
        guard let answer = try? BusWire.decode(Answer.self, answerLine), proofsMatch(answer.proof, expected) else {
            // For the log: a malformed answer (stray bytes on the stream) is not the same fault as a wrong token.
            let what = (try? BusWire.decode(Answer.self, answerLine)).map { "a proof of \($0.proof.utf8.count) characters that does not match" }
                ?? "\(answerLine.count) bytes that are not {\"proof\":…}"
            return .refused(.failure(nil, .unauthorized, "wrong proof: this connection does not know ~/.keiji/bus.token of the running keiji-bus"),
                            reason: "wrong proof from a \(role.rawValue): \(what)")
        }
        return .authenticated
    }
}

/// The endpoint answered but is not this user's keiji-bus: it could not prove it knows the token (or, on a
/// Unix socket, belongs to another uid). Nothing but a handshake hello was sent to it.
public struct BusAuthenticationFailure: Error, Sendable, CustomStringConvertible {
    public let endpoint: BusEndpoint
    public let reason: String

    public var message: String {
        "\(endpoint) is not this user's keiji-bus (\(reason)); nothing was sent to it"
    }

    public var description: String { message }
}
