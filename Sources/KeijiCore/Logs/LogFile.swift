import Foundation
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A task's or service's log: one plain-text active file (`<base>.log`, so `tail -f` works) plus sealed,
/// LZ4-compressed segments (`<base>.000001.log.lz4`, readable with `lz4 -d`). Rotation, sealing and
/// retention reuse the journal's ``SegmentSet`` machinery. Nothing is ever truncated: a restart appends.
public struct LogFile: Sendable {
    public let directory: String
    public let baseName: String
    public let rotate: Bool
    public let maxSize: Int
    /// Sealed segments kept; older ones are deleted by the same code that compacts the journal.
    public let retainedSegments: Int

    public init(directory: String, baseName: String, rotate: Bool, maxSize: Int, retainedSegments: Int = 10) {
        self.directory = directory
        self.baseName = baseName
        self.rotate = rotate
        self.maxSize = maxSize
        self.retainedSegments = retainedSegments
    }

    public init(task: TaskName, workspace: Workspace, settings: Settings) {
        self.init(directory: workspace.taskLogDirectory(task), baseName: task.slug, rotate: settings.rotateLogs, maxSize: settings.logMaxSize)
    }

    public init(service: String, workspace: Workspace, settings: Settings) {
        self.init(directory: workspace.serviceLogDirectory(service), baseName: service, rotate: settings.rotateLogs, maxSize: settings.logMaxSize)
    }

    public var activePath: String { directory + "/" + baseName + ".log" }
    /// A task's record of the `.env` content its log has warned of (the scheduler's `TaskEnvironments`), so a
    /// restart does not warn of it again.
    public var dotEnvWarnedPath: String { directory + "/.env-warned" }

    /// Whether this process's stderr is the active file (a service `keiji system --start` started): a line written
    /// to both would be there twice.
    public var isStandardError: Bool {
        var (err, file) = (stat(), stat())
        guard fstat(STDERR_FILENO, &err) == 0, stat(activePath, &file) == 0 else { return false }
        return err.st_dev == file.st_dev && err.st_ino == file.st_ino
    }

    var segments: SegmentSet<LogSegmentNaming> {
        SegmentSet(io: PosixJournalIO(), directory: directory, naming: LogSegmentNaming(baseName: baseName))
    }

    /// Segments not compressed (yet): a rotation renames the active file to one, then seals it.
    var plainSegments: SegmentSet<LogSegmentNaming> {
        SegmentSet(io: PosixJournalIO(), directory: directory, naming: LogSegmentNaming(baseName: baseName, compressed: false))
    }

    /// Opens the active file for appending (creating it 0600 and its directory 0700). The caller owns the fd.
    /// It is readable too, for ``endsInNewline(_:)``. Something else at its path (a symbolic link, a FIFO: a run can
    /// put one there, ``RegularFile``) is removed, never followed, and the new file begins by saying so.
    public func openForAppend() throws -> Int32 {
        try FileSystem.createDirectory(directory)
        var opened = RegularFile.open(activePath, flags: O_RDWR | O_APPEND | O_CREAT)
        var replaced: String?
        // A folder there is an error (EISDIR), not replaced.
        if case .failure(.notRegular(let mode)) = opened {
            let target = mode & S_IFMT == S_IFLNK ? (try? FileManager.default.destinationOfSymbolicLink(atPath: activePath)) : nil
            replaced = FileKind.described(mode) + (target.map { " (→ \($0), left as it was)" } ?? "")
            unlink(activePath)
            opened = RegularFile.open(activePath, flags: O_RDWR | O_APPEND | O_CREAT | O_EXCL)
        }
        switch opened {
        case .success(let fd):
            if let replaced {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                Self.write(fd, ISO8601.string(fromMilliseconds: now) + " [keiji] warning: \(activePath) was \(replaced), not a file: replaced by this one\n")
            }
            return fd
        case .failure(let failure):
            // Out of descriptors or memory is momentary (``ResourceShortage``): a run refused so is tried at its next slot.
            let code = if case .failed(let errno) = failure { ResourceShortage.code(errno: errno, otherwise: .io) } else { KeijiError.Code.io }
            throw KeijiError(code, "cannot open \(activePath): \(failure)")
        }
    }

    /// Appends one line with a UTC timestamp, e.g. `2026-11-23T04:00:00.123Z run 7f3a started`.
    public func append(_ message: String, at milliseconds: Int64) throws {
        let fd = try openForAppend()
        defer { close(fd) }
        Self.write(fd, ISO8601.string(fromMilliseconds: milliseconds) + " " + message + "\n")
    }

    public static func write(_ fd: Int32, _ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { FileSystem.writeAll($0, to: fd) }
    }

    /// Whether the file `fd` (opened readable) refers to is empty or ends in a newline: a run's output need not
    /// end in one, and a line keiji appends after it would run on from it. Unreadable counts as yes.
    public static func endsInNewline(_ fd: Int32) -> Bool {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return true }
        var last: UInt8 = 0
        return pread(fd, &last, 1, info.st_size - 1) != 1 || last == UInt8(ascii: "\n")
    }

    /// Seals the active file when rotation is on and it has reached `maxSize`: renames it to the next segment's plain
    /// name (`<base>.000007.log`), compresses that into the segment a chunk at a time (synced, directory synced), removes
    /// the plain copy, and applies retention (``sealPlainSegments(stillWritten:)``). A writer that has the active file
    /// open goes on writing into the renamed one: the caller names such files in `stillWritten`, and seals them once
    /// no one writes them (the scheduler rotates a task's log under a run only when its runs overlap). Returns whether
    /// it rotated.
    ///
    /// A segment whose compression fails (a full disk) stays plain: counted in the sequence, read by the tail, and
    /// compressed at the next rotation. (Removed from the count, the next rotation renamed onto it, and that output
    /// was lost.) Throws when the active file could not be rotated, or after rotating when a segment stayed plain; the
    /// log can be appended to either way.
    ///
    /// `movingStandardError`: for a service's own log at its start. A service `keiji system --start` started has
    /// its stderr on this file (a crash's message from the Swift runtime has nowhere else to go); when it is, the
    /// roll moves it to the new active file, or it would go on writing into the rolled one, which is then deleted.
    /// A service run by hand keeps its stderr.
    @discardableResult
    public func rotateIfNeeded(movingStandardError: Bool = false, stillWritten: (String) -> Bool = { _ in false }) throws -> Bool {
        guard rotate, let size = FileSystem.size(of: activePath), size >= maxSize else {
            return false
        }
        let standardErrorIsThisFile = movingStandardError && isStandardError
        let sequence = (try sequences().last ?? 0) + 1
        let plain = plainSegments.path(of: sequence)
        guard rename(activePath, plain) == 0 else { throw KeijiError(.io, "cannot rotate \(activePath): \(String(cString: strerror(errno)))") }
        if standardErrorIsThisFile {
            let descriptor = try openForAppend()
            defer { close(descriptor) }
            guard dup2(descriptor, STDERR_FILENO) >= 0 else {
                throw KeijiError(.io, "cannot point stderr at \(activePath): \(String(cString: strerror(errno)))")
            }
        }
        try sealPlainSegments(stillWritten: stillWritten)
        return true
    }

    /// Compresses every plain segment but those `stillWritten` (by its path), then deletes all but the newest
    /// ``retainedSegments``, sparing those too. One compressed while a run still wrote it lost that run's later output
    /// (into the plain copy, then removed). Throws, once the rest is done, when a segment stayed plain.
    public func sealPlainSegments(stillWritten: (String) -> Bool = { _ in false }) throws {
        var failure: (any Error)?
        for pending in try plainSegments.list() where !stillWritten(plainSegments.path(of: pending)) {
            do {
                try seal(pending)
            } catch {
                failure = KeijiError(.io, "kept \(plainSegments.path(of: pending)) uncompressed: \(error)")
                break  // the next would fail as this one did
            }
        }
        let old = Array(try sequences().dropLast(retainedSegments))
        try segments.remove(old.filter { FileSystem.exists(segments.path(of: $0)) })
        try plainSegments.remove(old.filter { FileSystem.exists(plainSegments.path(of: $0)) && !stillWritten(plainSegments.path(of: $0)) })
        if let failure { throw failure }
    }

    /// Every segment's sequence number, sealed or plain, oldest first.
    func sequences() throws -> [Int] {
        guard FileSystem.exists(directory) else { return [] }
        return Array(Set(try segments.list() + plainSegments.list())).sorted()
    }

    /// Compresses the plain segment `sequence` (into a `.partial` file, renamed when synced), then removes it. A sealed
    /// one already there is whole (it is renamed into place only once synced): a crash came before the plain one went.
    private func seal(_ sequence: Int) throws {
        let plain = plainSegments.path(of: sequence)
        let sealed = segments.path(of: sequence)
        if !FileSystem.exists(sealed) {
            let partial = sealed + ".partial"
            do {
                try LZ4FrameStream.compress(plain, to: partial)
                guard rename(partial, sealed) == 0 else { throw KeijiError(.io, "cannot write \(sealed): \(String(cString: strerror(errno)))") }
            } catch {
                unlink(partial)
                throw error
            }
            try segments.io.syncDirectory(directory)
        }
        unlink(plain)
    }

    /// The last `count` lines across sealed segments and the active file, oldest first, decoded as UTF-8 (a byte
    /// that is not becomes U+FFFD): for pages and messages. `keiji task --logs` prints ``lastLineBytes(_:)``.
    public func lastLines(_ count: Int) throws -> [String] {
        try lastLineBytes(count).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The last `count` lines as the task wrote them, without their newlines, oldest first: `--logs` prints them
    /// as `cat` would, whatever the bytes (decoded and printed again, a byte that was not UTF-8 came out as three).
    /// The active file first, then the segments back from the newest, all within ``tailBytes(forLines:)``.
    public func lastLineBytes(_ count: Int) throws -> [ArraySlice<UInt8>] {
        var tail = LogTail(lines: count, byteLimit: Self.tailBytes(forLines: count))
        tail.readPlain(activePath)
        for sequence in try (tail.isComplete ? [] : sequences()).reversed() where !tail.isComplete {
            let sealed = segments.path(of: sequence)
            if FileSystem.exists(sealed) { try tail.readSealed(sealed) } else { tail.readPlain(plainSegments.path(of: sequence)) }
        }
        return tail.lines
    }

    /// The most a tail reads, across the active file and the segments, at the least: 64 KiB a line asked for counts
    /// too (up to 256 MiB), so only lines longer than that on average come back fewer, the earliest the end of a
    /// longer one. One run can make a file of the log any size (a log rolls only as a run starts): read whole for a
    /// tail, a 300 MB log cost a dashboard page 0.9 GB and 12 s, and the CLI's `--logs` as much.
    public static let tailByteLimit = 4 << 20

    static func tailBytes(forLines count: Int) -> Int { max(tailByteLimit, min(count, 4096) * (64 << 10)) }

    /// Removes the active file, every sealed segment, the `.env` record and then the folder if nothing else is in it.
    /// A task that never ran has no folder: nothing to remove is not an error.
    public func removeAll() throws {
        guard FileSystem.exists(directory) else { return }
        try segments.remove(try segments.list())
        try plainSegments.remove(try plainSegments.list())
        // A compression a crash cut short leaves `<segment>.partial`: without this the folder stayed.
        for leftover in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where leftover.hasSuffix(".log.lz4.partial") {
            unlink(directory + "/" + leftover)
        }
        try FileSystem.remove(activePath)
        unlink(dotEnvWarnedPath)
        rmdir(directory)
    }
}

/// `<base>.<sequence, 6 digits or more>.log.lz4`, or `.log` for a segment not compressed (yet). Past 999999 the
/// sequence takes a 7th digit: read only as 6, that segment was unseen, and each later rotation renamed onto it.
public struct LogSegmentNaming: SegmentNaming {
    public let baseName: String
    public var compressed = true
    public init(baseName: String, compressed: Bool = true) {
        self.baseName = baseName
        self.compressed = compressed
    }
    private var suffix: String { compressed ? ".log.lz4" : ".log" }
    public func name(fromFileName fileName: String) -> Int? {
        let prefix = baseName + "."
        guard fileName.hasPrefix(prefix), fileName.hasSuffix(suffix) else { return nil }
        let digits = fileName.dropFirst(prefix.count).dropLast(suffix.count)
        guard digits.count >= 6, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let sequence = Int(digits), fileName == self.fileName(for: sequence) else { return nil }  // one name a number
        return sequence
    }
    public func fileName(for sequence: Int) -> String { baseName + "." + String(format: "%06d", sequence) + suffix }
}
