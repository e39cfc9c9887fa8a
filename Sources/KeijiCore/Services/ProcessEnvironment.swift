#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Another process's environment as `/proc/<pid>/environ` gives it (`KEY=value\0…`), read with plain `open`/`read`
/// into a buffer the caller keeps: the sweep for a run's escaped processes reads every process's, and allocates nothing
/// for the ones without the variable it looks for, nearly all of them.
public enum ProcessEnvironment {
    /// The whole of process `pid`'s environment into `buffer` (grown as needed); its length, 0 when it cannot be read
    /// (gone, another user's).
    public static func read(_ pid: pid_t, into buffer: inout [UInt8]) -> Int {
        let fd = open("/proc/\(pid)/environ", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var length = 0
        while true {
            if length == buffer.count { buffer += [UInt8](repeating: 0, count: max(buffer.count, 4096)) }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + length, $0.count - length) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return count < 0 ? 0 : length }
            length += count
        }
    }

    /// Process `pid`'s whole environment, `NAME=value` each; nil when it cannot be read.
    public static func entries(of pid: pid_t) -> [String]? {
        var buffer: [UInt8] = []
        let length = read(pid, into: &buffer)
        guard length > 0 else { return nil }
        return buffer[..<length].split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value of `name` in `environment` (nil when it has none, or an empty one), hopping from variable to variable
    /// with `memchr`.
    public static func value(of name: String, in environment: ArraySlice<UInt8>) -> [UInt8]? {
        var name = name
        return name.withUTF8 { key in
            environment.withUnsafeBytes { bytes -> [UInt8]? in
                guard let base = bytes.baseAddress, let keyBase = key.baseAddress else { return nil }
                var start = 0
                while start < bytes.count {
                    let nul: UnsafeRawPointer? = UnsafeRawPointer(memchr(base + start, 0, bytes.count - start))
                    let end = nul.map { base.distance(to: $0) } ?? bytes.count
                    if end - start > key.count + 1, bytes[start + key.count] == UInt8(ascii: "="), memcmp(base + start, keyBase, key.count) == 0 {
                        return Array(bytes[(start + key.count + 1)..<end])
                    }
                    start = end + 1
                }
                return nil
            }
        }
    }
}
