import CLibCrypto
import Synchronization

/// HMAC-SHA256 (RFC 2104) from libcrypto, computed from one ready context that is copied for each call.
///
/// Not the one-shot `HMAC()`: in OpenSSL 3.0 it fetches the MAC and the digest from the provider store on
/// every call, and fetches racing on several threads can fail (openssl/openssl#13682). `HMAC()` then
/// returns nothing, and the proof built from it was an empty string: a bus refused a client that knew the
/// token ("wrong proof"), about once in a few hundred test runs. Copying a context that already holds its
/// digest fetches nothing, and a failure is reported instead of turning into an empty proof. Even so, a bus
/// test with sixteen handshakes at once was refused once more ("wrong proof", 2026-12-02, one in about a
/// hundred suite runs): the calls now take turns. A handshake computes two digests of a few dozen bytes
/// (microseconds), so nothing waits noticeably, and no libcrypto state is ever touched by two threads at once.
enum HMACSHA256 {
    static let digestLength = 32
    private static let turn = Mutex(())

    /// `nil` only if libcrypto fails (out of memory, or no SHA-256 in its providers).
    static func digest(key: [UInt8], message: [UInt8]) -> [UInt8]? {
        turn.withLock { _ in computeDigest(key: key, message: message) }
    }

    private static func computeDigest(key: [UInt8], message: [UInt8]) -> [UInt8]? {
        guard let template, let context = EVP_MAC_CTX_dup(template) else { return nil }
        defer { EVP_MAC_CTX_free(context) }
        // A zero-length key buffer has no base address; an empty token never matches a real one anyway.
        let key = key.isEmpty ? [0] : key
        var digest = [UInt8](repeating: 0, count: digestLength)
        var length = 0
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                EVP_MAC_init(context, k.baseAddress, k.count, nil) == 1
                    && EVP_MAC_update(context, m.baseAddress, m.count) == 1
                    && EVP_MAC_final(context, &digest, &length, digest.count) == 1
            }
        }
        return ok && length == digestLength ? digest : nil
    }

    /// The fetched HMAC with SHA-256 set and no key; made once (`static let` initialisation is thread-safe)
    /// and never changed after, only copied: copying reads it, which libcrypto allows from any thread.
    nonisolated(unsafe) private static let template: OpaquePointer? = {
        // The system's openssl.cnf says nothing HMAC-SHA256 needs (the default provider has it), and parsing
        // it was about 3 ms of every CLI command that reaches the bus.
        OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_LOAD_CONFIG), nil)
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { return nil }
        defer { EVP_MAC_free(mac) }
        guard let context = EVP_MAC_CTX_new(mac) else { return nil }
        let ok = "digest".withCString { name in
            "SHA256".withCString { value in
                var parameters = [OSSL_PARAM_construct_utf8_string(name, UnsafeMutablePointer(mutating: value), 0),
                                  OSSL_PARAM_construct_end()]
                return EVP_MAC_CTX_set_params(context, &parameters) == 1
            }
        }
        guard ok else {
            EVP_MAC_CTX_free(context)
            return nil
        }
        return context
    }()
}
