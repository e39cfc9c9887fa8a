import Foundation

/// `keiji.db.unsynced`: present while a scheduler writes the SQLite view without syncing it, and naming the boot
/// (`/proc/sys/kernel/random/boot_id`) it did so in. Written and synced before the first unsynced commit, removed
/// only once everything is synced. Found at open with another boot's ID, it means the machine went down while
/// the view's writes were only in memory: the view is rebuilt from the journal.
public struct UnsyncedViewMarker: Sendable {
    public let path: String

    public init(viewPath: String) { path = viewPath + ".unsynced" }

    /// The boot this marker was written in; nil when there is no marker.
    public func bootID() -> String? {
        guard FileSystem.exists(path) else { return nil }
        // An unreadable or empty marker still says "unsynced": it names no boot, so it never matches this one.
        guard let data = try? FileSystem.read(path) else { return "" }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func write(bootID: String) throws {
        try FileSystem.writeAtomically(Data((bootID + "\n").utf8), to: path)
    }

    func remove() throws {
        guard FileSystem.exists(path) else { return }
        try FileSystem.remove(path)
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// This boot's ID; a fixed text where the kernel does not say (then only a marker of that same text matches).
    public static func currentBootID() -> String {
        guard let data = try? FileSystem.read("/proc/sys/kernel/random/boot_id") else { return "unknown-boot" }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
