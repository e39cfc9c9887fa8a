import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The last meaningful line a failed run wrote into its task's log, for its message: a crashed Swift task's
/// `Fatal error: boom` was only in the log, and its ErrorTxt said `killed by signal 4`. Read only for a failed run
/// that left no error file, from the log's tail: 4 KiB, or 64 KiB when that ends inside the Swift runtime's crash
/// report (its backtrace and registers run to several KiB after the line that matters).
enum RunOutputTail {
    static let smallTail = 4 << 10
    static let largeTail = 64 << 10
    /// The most of the line that is kept, in bytes.
    static let lineLimit = 200

    /// The last line run `runID` wrote into the log open as `fd`, before any crash report, without control
    /// characters and at most ``lineLimit`` bytes; nil when it wrote none, or when another run's output may be
    /// mixed with its own (another run of the task started after it, or its start line is out of reach while
    /// another's is in it).
    static func lastLine(in fd: Int32, runID: String) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return nil }
        for limit in [smallTail, largeTail] {
            let length = min(Int(info.st_size), limit)
            var bytes = [UInt8](repeating: 0, count: length)
            let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, info.st_size - off_t(length)) }
            guard count == length else { return nil }
            var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let whole = length == Int(info.st_size)
            // Begun mid-line: that line's start is out of reach, and it is the line only when the large tail has no other.
            let cut = whole ? nil : lines.removeFirst()
            let ownStart = " [keiji] run \(runID) started"
            let start = lines.lastIndex { $0.contains(ownStart) }
            if let start { lines.removeSubrange(...start) } else if whole { return nil }
            if lines.contains(where: { $0.contains(" [keiji] run ") && $0.contains(" started (attempt ") }) { return nil }
            // The runtime's crash report starts with `*** Signal 4: Backtracing…` (or `💣 Program crashed`) and ends with
            // `Backtrace took 0.04s`: what came before it is the task's last word.
            if let report = lines.firstIndex(where: { $0.hasPrefix("*** Signal ") || $0.hasPrefix("💣 ") }) {
                lines.removeSubrange(report...)
            } else if lines.contains(where: { $0.hasPrefix("Backtrace took ") }) {
                if start == nil, !whole, limit == smallTail { continue }  // the report's start is further back
                return nil
            }
            let line = lines.last { line in
                !line.allSatisfy(\.isWhitespace) && !line.hasPrefix("swift-runtime: ") && !line.contains(" [keiji] ")
            }
            // Nothing but the runtime's lines in the small tail (a short crash report): the run's own are further back.
            if line == nil, start == nil, !whole, limit == smallTail { continue }
            // A last line longer than the large tail: its end (dropped, a 70 KB line left the message its status alone).
            if line == nil, start == nil, let cut, !cut.hasPrefix("swift-runtime: "), !cut.contains(" [keiji] ") {
                return clean(cut, keepingEnd: true)
            }
            return line.flatMap { clean($0) }
        }
        return nil
    }

    /// One line: control characters (C0, DEL and C1) as spaces, trimmed, at most `limit` bytes (cut at a character,
    /// with `…`). A run's message from its error file is cleaned the same way, to its own limit. `keepingEnd`: the end
    /// of a line whose start is out of reach, after a `…`.
    static func clean(_ line: Substring, limit: Int = lineLimit, keepingEnd: Bool = false) -> String? {
        var text = String(String.UnicodeScalarView(line.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? " " : $0 }))
            .trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        if keepingEnd {
            var start = text.endIndex
            var kept = 0
            while start > text.startIndex, kept + text[text.index(before: start)].utf8.count <= limit - 3 {
                start = text.index(before: start)
                kept += text[start].utf8.count
            }
            return "…" + text[start...].trimmingCharacters(in: .whitespaces)
        }
        if text.utf8.count > limit {
            var cut = ""
            for character in text {
                if cut.utf8.count + character.utf8.count > limit - 3 { break }
                cut.append(character)
            }
            text = cut + "…"
        }
        return text
    }
}
