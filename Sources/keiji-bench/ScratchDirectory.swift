import Foundation

/// A fresh directory the benchmark owns, created with `mkdtemp` inside a parent (so on the parent's file
/// system) and removed with everything in it afterwards (unless kept). The parent itself is never touched.
struct ScratchDirectory {
    let path: String
    /// When set, ``remove(_:)`` and ``removeAll()`` do nothing.
    let keep: Bool

    init(inside parent: String, keep: Bool = false) throws {
        self.keep = keep
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        var template = Array(((parent.hasSuffix("/") ? parent : parent + "/") + "keiji-bench-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw BenchmarkFailure("cannot create a directory in \(parent): \(String(cString: strerror(errno)))")
        }
        path = String(cString: created)
    }

    /// A path inside the directory.
    func path(_ name: String) -> String { path + "/" + name }

    /// Removes one entry (a journal directory or a file) to keep disk use low between phases.
    func remove(_ name: String) {
        guard !keep else { return }
        try? FileManager.default.removeItem(atPath: path(name))
    }

    /// Flushes dirty data of every file system (`sync(2)`), so that what earlier phases or other programs
    /// left in the page cache is not written back in the middle of the next timed phase.
    func settle() {
        sync()
    }

    func removeAll() {
        guard !keep else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
