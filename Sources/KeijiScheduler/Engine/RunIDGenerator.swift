/// Makes run IDs: 12 lowercase hex digits (48 bits), as the journal, the view and the logs have always shown them.
///
/// They came from `UUID()`, which on Linux opens, reads and closes `/dev/urandom` for each one: three system
/// calls per firing, ~5 % of the scheduler's CPU at 10,000 firings/s. Here the system's generator is asked once,
/// for a random start; each ID is then the next counter value passed through a bijection of 48-bit integers.
/// So no ID repeats within a process (2^48 of them), and across processes and nodes (each with its own random
/// start) they collide no more often than 48 random bits do, which is what the UUID prefix gave.
struct RunIDGenerator {
    private static let mask: UInt64 = (1 << 48) - 1
    private var counter: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        counter = system.next() & Self.mask
    }

    mutating func next() -> String {
        counter = (counter &+ 1) & Self.mask
        let value = Self.scramble(counter)
        return String(unsafeUninitializedCapacity: 12) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for index in 0..<12 {
                let nibble = Int((value >> UInt64(44 - 4 * index)) & 0xF)
                buffer[index] = digits.utf8Start[nibble]
            }
            return 12
        }
    }

    /// An invertible mix of 48-bit values (xor-shifts and odd multipliers modulo 2^48, each step a bijection), so
    /// that consecutive counters give unrelated-looking IDs rather than a visible sequence.
    static func scramble(_ input: UInt64) -> UInt64 {
        var x = input & mask
        x ^= x >> 23
        x = (x &* 0x9E37_79B9_7F4B) & mask
        x ^= x >> 21
        x = (x &* 0xC2B2_AE3D_27D5) & mask
        x ^= x >> 24
        return x
    }
}
