import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A tmpfs of a given size mounted on a folder: a disk that fills up, for the tests of a full disk. Needs root
/// (``canMount``); `mount` and `umount` run as programs, and one that fails throws.
public struct SmallDisk {
    public let path: String

    public static var canMount: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/mount") }

    /// Mounts a tmpfs of `size` (`64k`, `4m`) on `path`, an existing folder.
    public init(at path: String, size: String) throws {
        self.path = path
        try Self.run("mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path)
    }

    /// Gives the disk room (or takes it): its files stay.
    public func resize(to size: String) throws {
        try Self.run("mount", "-o", "remount,size=\(size)", path)
    }

    /// `lazily`: detached now and gone once no process holds a file on it (a scheduler's open task log).
    public func unmount(lazily: Bool = false) {
        try? Self.run("umount", lazily ? ["--lazy", path] : [path])
    }

    private static func run(_ tool: String, _ arguments: String...) throws { try run(tool, arguments) }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/" + tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "SmallDisk", code: Int(process.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)"])
        }
    }
}
