import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A log's last lines, gathered newest file first (the active file, then each segment back) within one read budget
/// for them all (``LogFile/tailBytes(forLines:)``): one run can make any file of it any size. Only the active file was
/// bounded, and six sealed segments of one 20 MB line each made 100 lines 120 MB (a dashboard page held the scheduler
/// at 300 MB for 12 s).
struct LogTail {
    let wanted: Int
    /// The bytes older files may still add.
    private(set) var budget: Int
    /// Oldest first, without their newlines.
    private(set) var lines: [ArraySlice<UInt8>] = []
    /// Whether older files have nothing to add: enough lines, the budget spent, or a file read not to its start.
    private(set) var isComplete = false

    init(lines wanted: Int, byteLimit: Int) {
        self.wanted = wanted
        self.budget = byteLimit
        isComplete = wanted <= 0 || byteLimit <= 0
    }

    private var missing: Int { wanted - lines.count }

    /// Adds a plain file's (the active one, or a segment left uncompressed) last lines, read backwards a block at a
    /// time and no further than needed. A missing file adds nothing.
    mutating func readPlain(_ path: String) {
        guard case .success(let fd) = RegularFile.open(path, flags: O_RDONLY) else { return }  // not a link's target, nor a FIFO
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return }
        let size = Int(info.st_size)
        var start = size
        var blocks: [[UInt8]] = []  // newest first
        var newlines = 0
        while start > 0, size - start < budget, newlines <= missing {
            let length = min(64 << 10, start, budget - (size - start))
            var block = [UInt8](repeating: 0, count: length)
            guard pread(fd, &block, length, off_t(start - length)) == length else { break }
            start -= length
            newlines += block.count { $0 == UInt8(ascii: "\n") }
            blocks.append(block)
        }
        add(Array(blocks.reversed().joined()), whole: start == 0)
    }

    /// Adds a sealed segment's last lines. It can only be decompressed from its start: each chunk is kept only while
    /// the budget and the lines still missing need it.
    mutating func readSealed(_ path: String) throws {
        var window = Window(limit: budget, lines: missing)
        try LZ4FrameStream.decompress(path) { window.append($0) }
        let (bytes, whole) = window.joined()
        add(bytes, whole: whole)
    }

    /// `bytes`, a file's last bytes (all of it when `whole`), go before the lines so far.
    private mutating func add(_ bytes: [UInt8], whole: Bool) {
        var older = bytes[...].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if older.last?.isEmpty == true { older.removeLast() }
        if !whole, older.count > missing { older.removeFirst() }  // begun mid-line; else the earliest, cut to its end
        lines = older.suffix(missing) + lines
        budget -= bytes.count
        isComplete = !whole || missing <= 0 || budget <= 0
    }

    /// The end of a stream read from its start: whole chunks are let go once those after them hold `limit` bytes or
    /// more than `lines` newlines (enough for `lines` whole lines).
    private struct Window {
        let limit: Int
        let lines: Int
        private var chunks: [(bytes: [UInt8], newlines: Int)] = []
        private var first = 0
        private var kept = 0
        private var newlines = 0
        private var dropped = false

        init(limit: Int, lines: Int) {
            self.limit = limit
            self.lines = lines
        }

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            let chunk = [UInt8](bytes)
            let count = chunk.count { $0 == UInt8(ascii: "\n") }
            chunks.append((chunk, count))
            kept += chunk.count
            newlines += count
            while first < chunks.count, kept - chunks[first].bytes.count >= limit || newlines - chunks[first].newlines > lines {
                kept -= chunks[first].bytes.count
                newlines -= chunks[first].newlines
                chunks[first] = ([], 0)
                first += 1
                dropped = true
            }
            if first >= 1024, first * 2 >= chunks.count {
                chunks.removeFirst(first)
                first = 0
            }
        }

        /// The last `limit` bytes kept, in one array, and whether they are the whole stream.
        func joined() -> (bytes: [UInt8], whole: Bool) {
            var skip = max(0, kept - limit)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(kept - skip)
            for (chunk, _) in chunks[first...] {
                if skip >= chunk.count {
                    skip -= chunk.count
                } else {
                    bytes += chunk[skip...]
                    skip = 0
                }
            }
            return (bytes, !dropped && kept <= limit)
        }
    }
}
