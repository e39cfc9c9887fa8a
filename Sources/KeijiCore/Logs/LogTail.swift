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

    /// Adds a plain file's (the active one, or a segment left uncompressed) last lines: read backwards a block at a
    /// time, no further than needed, to find where they begin, then read from there into one array. A missing file
    /// adds nothing.
    mutating func readPlain(_ path: String) {
        guard case .success(let fd) = RegularFile.open(path, flags: O_RDONLY) else { return }  // not a link's target, nor a FIFO
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return }
        let size = Int(info.st_size)
        var start = size
        var block = [UInt8](repeating: 0, count: 64 << 10)
        var newlines = 0
        while start > 0, size - start < budget, newlines <= missing {
            let length = min(block.count, start, budget - (size - start))
            guard pread(fd, &block, length, off_t(start - length)) == length else { break }
            start -= length
            newlines += block[..<length].count { $0 == UInt8(ascii: "\n") }
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: size - start) { buffer, count in
            while count < buffer.count {
                let read = pread(fd, buffer.baseAddress! + count, buffer.count - count, off_t(start + count))
                if read < 0, errno == EINTR { continue }
                guard read > 0 else { break }  // shorter now: what there is
                count += read
            }
        }
        add(bytes, whole: start == 0)
    }

    /// Adds a sealed segment's last lines. It can only be decompressed from its start, so it is twice: once to find
    /// where the lines wanted begin (its length, and where its last newlines are), then to keep the bytes from there.
    mutating func readSealed(_ path: String) throws {
        // Where the last `missing + 1` newlines are, a ring: the lines wanted begin at the earliest.
        var newlines = [Int](repeating: -1, count: missing + 1)
        var seen = 0
        var length = 0
        try LZ4FrameStream.decompress(path) { chunk in
            var at = 0
            while at < chunk.count, let found = memchr(chunk.baseAddress! + at, Int32(UInt8(ascii: "\n")), chunk.count - at) {
                at = chunk.baseAddress!.distance(to: UnsafeRawPointer(found)) + 1
                newlines[seen % newlines.count] = length + at - 1
                seen += 1
            }
            length += chunk.count
        }
        let start = max(length - budget, seen > missing ? newlines[seen % newlines.count] : 0)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length - start)
        var offset = 0
        try LZ4FrameStream.decompress(path) { chunk in
            let from = max(start - offset, 0)
            if from < chunk.count { bytes += chunk[from...] }
            offset += chunk.count
        }
        add(bytes, whole: start == 0)
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
}
