import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Programs a test runs, put in place by `cp` in a child process, never through a descriptor of this process: a child
/// another test thread forks while this process holds the file open for writing keeps that descriptor until it execs,
/// and running the file meanwhile fails with ETXTBSY ("Text file busy"; CI runs failed so, a copied spawn helper and
/// a copied scheduler). The wait for `cp` is on a thread of its own: the cooperative pool has two threads here, and
/// every test in the process shares them.
public enum ExecutableFiles {
    /// `cp` failed.
    public struct CopyFailed: Error, CustomStringConvertible {
        public let description: String
    }

    /// Copies `sources` to `destination` (a file, or a folder for several), as `cp` does.
    public static func copy(_ sources: [String], to destination: String) async throws {
        let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
            Thread {
                continuation.resume(with: Result {
                    let copy = Process()
                    copy.executableURL = URL(fileURLWithPath: "/bin/cp")
                    copy.arguments = sources + [destination]
                    try copy.run()
                    copy.waitUntilExit()
                    return copy.terminationStatus
                })
            }.start()
        }
        guard status == 0 else { throw CopyFailed(description: "cp \(sources.joined(separator: " ")) \(destination): exit \(status)") }
    }

    /// Writes the script `text` to `path`, mode 0755.
    public static func write(_ text: String, to path: String) async throws {
        let source = path + ".text"
        try text.write(toFile: source, atomically: true, encoding: .utf8)
        try await copy([source], to: path)
        try FileManager.default.removeItem(atPath: source)
        guard chmod(path, 0o755) == 0 else { throw CopyFailed(description: "chmod 755 \(path): errno \(errno)") }
    }
}
