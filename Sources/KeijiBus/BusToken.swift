import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The shared secret in `~/.keiji/bus.token` (mode 0600, readable only by its owner). It never crosses the
/// wire: every bus connection opens with ``BusHandshake``, where the bus, the CLI and the scheduler each
/// prove they know it, which is what stops another local user (or a listener squatting on a TCP port while
/// keiji-bus is down) from sending this user's scheduler commands or receiving them.
public enum BusToken {
    /// Random bytes in a new token (hex-encoded, so the file holds 64 characters).
    static let byteCount = 32

    /// Reads the token, creating it if it is missing or empty.
    ///
    /// Creation cannot race: the bus and a CLI may both find no token at the same moment, and if both wrote
    /// one they would hold different secrets and every command would be refused until a restart. So the new
    /// token is written to a private temporary file and `link(2)`ed into place, which fails if another
    /// process got there first; then whatever won is read back.
    public static func loadOrCreate(_ workspace: Workspace) throws -> String {
        let path = workspace.busTokenFile
        if let token = try read(path) { return token }
        try FileSystem.createDirectory(workspace.systemRoot, mode: 0o700)
        let temporary = path + ".new-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileSystem.writeAtomically(Data((generate() + "\n").utf8), to: temporary, mode: 0o600)
        defer { unlink(temporary) }
        if link(temporary, path) != 0 {
            let code = errno
            if code == EEXIST {
                // An empty leftover is replaced; a real token written by someone else wins.
                if let token = try read(path) { return token }
                guard rename(temporary, path) == 0 else {
                    throw KeijiError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
                }
            } else {
                throw KeijiError(.io, "cannot write \(path): \(String(cString: strerror(code)))")
            }
        }
        let directory = open(workspace.systemRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 { fsync(directory); close(directory) }
        guard let token = try read(path) else { throw KeijiError(.io, "\(path) is empty after writing it") }
        return token
    }

    /// A fresh token: `byteCount` bytes from the system's cryptographic generator, hex-encoded.
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<byteCount).map { _ in
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            return String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
    }

    /// The token in `path`, trimmed; `nil` if the file is missing or blank.
    private static func read(_ path: String) throws -> String? {
        guard FileSystem.exists(path) else { return nil }
        let data = try FileSystem.read(path)
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }

}
