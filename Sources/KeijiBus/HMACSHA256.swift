import KeijiCore

/// HMAC-SHA256 (RFC 2104) over Core's ``SHA256``: plain Swift with no shared state, so any number of threads
/// may compute it at once. libcrypto, used before, cost every `keiji` start its loading and the first HMAC its
/// provider initialisation (about 2.5 ms of CPU together, of a handshake that otherwise takes microseconds), and
/// its provider fetches needed a lock of their own under concurrency (openssl/openssl#13682).
enum HMACSHA256 {
    static let digestLength = SHA256.digestLength

    static func digest(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var block = key.count > SHA256.blockLength ? SHA256.hash(key) : key
        block += [UInt8](repeating: 0, count: SHA256.blockLength - block.count)
        var inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        var outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(inner.digest())
        return outer.digest()
    }
}
