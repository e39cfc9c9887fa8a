import CLibCrypto
import Foundation

/// SHA-256 from libcrypto, fed in parts: how a cluster names a Swift task's binary (``ClusterBinaries``), so a
/// 50 MB file is hashed without being held in memory whole.
///
/// Each hash has a context of its own, initialised from one digest fetched once: initialising from `EVP_sha256()`
/// would fetch the digest from the provider store on every call, and such fetches racing on several threads can
/// fail in OpenSSL 3.0 (openssl/openssl#13682; `HMACSHA256` in KeijiBus says more). A failure is reported, never
/// turned into a digest.
final class SHA256 {
    private let context: OpaquePointer

    init() throws {
        guard let algorithm = Self.algorithm, let context = EVP_MD_CTX_new() else { throw Self.failure }
        guard EVP_DigestInit_ex2(context, algorithm, nil) == 1 else {
            EVP_MD_CTX_free(context)
            throw Self.failure
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: some DataProtocol) throws {
        for region in bytes.regions {
            let ok = region.withUnsafeBytes { raw in raw.isEmpty || EVP_DigestUpdate(context, raw.baseAddress, raw.count) == 1 }
            guard ok else { throw Self.failure }
        }
    }

    /// The digest as 64 lowercase hex digits.
    func finish() throws -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &length) == 1, length == 32 else { throw Self.failure }
        return ClusterDatabase.hex(digest)
    }

    /// The SHA-256 of the file at `path`, read 1 MiB at a time; nil when there is no such file.
    static func file(_ path: String) throws -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        let hash = try SHA256()
        while let data = try file.read(upToCount: 1 << 20), !data.isEmpty { try hash.update(data) }
        return try hash.finish()
    }

    private static let failure = KeijiError(.io, "libcrypto could not compute a SHA-256 (out of memory, or no SHA-256 in its providers)")

    /// Fetched once (`static let` initialisation is thread-safe) and only read after.
    nonisolated(unsafe) private static let algorithm: OpaquePointer? = {
        // keiji needs nothing from the system's openssl.cnf (the default provider has SHA-256).
        OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_LOAD_CONFIG), nil)
        return EVP_MD_fetch(nil, "SHA256", nil)
    }()
}
