/// `KEY=value\0` strings in the form the spawn server passes to `execve`, built once and copied into each
/// request as bytes (no per-run dictionary work).
struct EnvironmentBlock: Sendable, Equatable {
    private(set) var bytes: [UInt8] = []
    private(set) var count = 0

    init() {}

    /// The pairs sorted by key (so a block's bytes depend only on its contents), minus `excluded` keys.
    init(_ variables: [String: String], excluding excluded: Set<String> = []) {
        for (key, value) in variables.sorted(by: { $0.key < $1.key }) where !excluded.contains(key) { append(key, value) }
    }

    /// Adds `key=value`. A key that is empty or holds `=`, or a part with a NUL byte, cannot be passed to a
    /// process and is left out.
    mutating func append(_ key: String, _ value: String) {
        let keyBytes = key.utf8
        guard !keyBytes.isEmpty, !keyBytes.contains(0), !keyBytes.contains(UInt8(ascii: "=")), !value.utf8.contains(0) else { return }
        bytes.append(contentsOf: keyBytes)
        bytes.append(UInt8(ascii: "="))
        bytes.append(contentsOf: value.utf8)
        bytes.append(0)
        count += 1
    }

    mutating func append(_ other: EnvironmentBlock) {
        bytes.append(contentsOf: other.bytes)
        count += other.count
    }

    /// The keys in the block, in order (for tests and diagnostics).
    var keys: [String] {
        bytes.split(separator: 0).map { String(decoding: $0.prefix { $0 != UInt8(ascii: "=") }, as: UTF8.self) }
    }
}
