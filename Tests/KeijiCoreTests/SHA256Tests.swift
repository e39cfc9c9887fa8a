import Testing

@testable import KeijiCore

/// The hand-written SHA-256 against FIPS 180-4's examples, and fed in parts that straddle its 64-byte blocks.
struct SHA256Tests {
    static func hex(_ text: String) -> String {
        var hash = SHA256()
        hash.update(Array(text.utf8))
        return hash.hexDigest()
    }

    @Test func matchesTheStandardsVectors() {
        #expect(Self.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Self.hex(String(repeating: "a", count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Every split of 0…200 bytes into two parts, and 1-byte parts: the same digest as all at once.
    @Test func partsGiveTheSameDigestAsTheWhole() {
        let bytes = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200] {
            let whole = SHA256.hash(Array(bytes[0..<length]))
            for cut in 0...length {
                var parts = SHA256()
                parts.update(Array(bytes[0..<cut]))
                parts.update(Array(bytes[cut..<length]))
                #expect(parts.digest() == whole, "length \(length), cut at \(cut)")
            }
            var bytewise = SHA256()
            for byte in bytes[0..<length] { bytewise.update([byte]) }
            #expect(bytewise.digest() == whole)
        }
    }
}
