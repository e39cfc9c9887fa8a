import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A secret in a file of its own in `~/.keiji` (mode 0600, readable only by its owner): 32 random bytes,
/// hex-encoded. The bus, `/metrics` and the dashboard's login each have one (``BusToken``,
/// `metrics.token`, `dashboard.token`), so a secret sent over HTTP to whatever holds a loopback port is
/// never the key to the bus.
public enum TokenFile {
    /// Random bytes in a new token (hex-encoded, so the file holds 64 characters).
    static let byteCount = 32

    /// Reads the token in `path`, creating it if it is missing or empty.
    ///
    /// Creation cannot race: two processes may both find no token at the same moment, and if both wrote one they
    /// would hold different secrets (for the bus, every command would be refused until a restart). So the new
    /// token is written to a private temporary file and `link(2)`ed into place, which fails if another process
    /// got there first; then whatever won is read back.
    public static func loadOrCreate(_ path: String, in directory: String) throws -> String {
        if let token = try read(path) { return token }
        try FileSystem.createDirectory(directory, mode: 0o700)
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
        let folder = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 { fsync(folder); close(folder) }
        guard let token = try read(path) else { throw KeijiError(.io, "\(path) is empty after writing it") }
        return token
    }

    /// A fresh token: `byteCount` bytes from the system's cryptographic generator, hex-encoded.
    static func generate() -> String { randomHex(bytes: byteCount) }

    /// `count` bytes from the system's cryptographic generator, hex-encoded: tokens, and the dashboard's session ids
    /// and CSRF tokens.
    public static func randomHex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    /// The token in `path`, trimmed; `nil` if the file is missing or blank.
    private static func read(_ path: String) throws -> String? {
        guard FileSystem.exists(path) else { return nil }
        let data = try FileSystem.read(path)
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }
}
