import Foundation
import KeijiJournal
import Synchronization
import Testing

/// An in-memory ``JournalIO`` that knows what a power loss would keep.
///
/// Each file has a durable image (changed only by `sync`) and the writes since; the directory has durable
/// entries (changed only by `syncDirectory`) and the creates, renames and removals since. From that,
/// ``crashImages(seed:count:)`` builds the file systems a crash could leave: unsynced writes kept, dropped,
/// torn at 512-byte sectors or persisted out of order, and unsynced directory operations kept as a prefix.
///
/// Faults: `crash(atOperation:)` makes the n-th mutating operation and everything after it fail (the
/// process died there); `inject` fails chosen operations with an errno, optionally after a partial write.
///
/// Descriptors are never reused, so closing one that is unknown or already closed is caught: it records an
/// issue in the running test and lands in ``descriptorMisuse``. (In the real process that number may by then
/// belong to SQLite or a socket.)
final class SimulatedFileSystem: JournalIO, @unchecked Sendable {
    // @unchecked: all state lives in the Mutex.

    /// Its paths name its own inodes, and nothing else moves them: there is no descriptor to pin.
    func pinned(to directory: String) throws -> any JournalIO { self }

    enum Operation: Equatable {
        case create(String), write(String, offset: Int, count: Int), sync(String), truncate(String, Int)
        case rename(String, String), remove(String), syncDirectory(String)
    }

    enum Fault {
        case fail(Int32)
        /// Write this many bytes, then fail.
        case partialWrite(Int, Int32)
    }

    private enum Pending {
        case write(offset: Int, bytes: [UInt8])
        case truncate(Int)
    }

    private struct Inode {
        var durable: [UInt8] = []
        var current: [UInt8] = []
        var pending: [Pending] = []
    }

    private enum DirectoryChange {
        case link(String, Int)
        case unlink(String)
    }

    private struct State {
        var inodes: [Int: Inode] = [:]
        var nextInode = 1
        var durableEntries: [String: Int] = [:]
        var currentEntries: [String: Int] = [:]
        var directoryChanges: [DirectoryChange] = []
        var directories: Set<String> = []
        var descriptors: [Int32: Int] = [:]
        var nextDescriptor: Int32 = 3
        var locks: Set<String> = []
        var lockHolders: [Int32: String] = [:]
        var mutatingOperations = 0
        var crashAt: Int?
        var crashed = false
        var injector: (@Sendable (Operation) -> Fault?)?
        var log: [Operation] = []
        /// Set while an injected partial write is applied: (offset, bytes to keep).
        var partialWrite: (Int, Int)?
        /// Closes of descriptors this file system never handed out or had already closed.
        var descriptorMisuse: [String] = []
        var bytesRead = 0
    }

    private let state: Mutex<State>

    init() { state = Mutex(State()) }

    private init(_ initial: State) { state = Mutex(initial) }

    /// Descriptors (files and locks) handed out and not yet closed.
    var openDescriptorCount: Int { state.withLock { $0.descriptors.count + $0.lockHolders.count } }
    /// Every close of an unknown or already-closed descriptor, in order.
    var descriptorMisuse: [String] { state.withLock { $0.descriptorMisuse } }

    /// How many mutating operations have run.
    var mutatingOperationCount: Int { state.withLock { $0.mutatingOperations } }
    var operations: [Operation] { state.withLock { $0.log } }
    var syncCount: Int { state.withLock { $0.log.filter { if case .sync = $0 { true } else { false } }.count } }
    /// Bytes handed out by `read` so far.
    var bytesRead: Int { state.withLock { $0.bytesRead } }

    /// The `n`-th mutating operation (1-based) and all later ones fail as if the process died there.
    func crash(atOperation n: Int?) { state.withLock { $0.crashAt = n } }

    func inject(_ injector: (@Sendable (Operation) -> Fault?)?) { state.withLock { $0.injector = injector } }

    /// Current content of a file, for tests that corrupt or inspect files directly.
    func contents(of path: String) -> [UInt8]? {
        state.withLock { s in s.currentEntries[path].map { s.inodes[$0]!.current } }
    }

    /// Replaces a file's content durably (a test's way to damage a file "on disk").
    func setContents(_ bytes: [UInt8], of path: String) {
        state.withLock { s in
            let inode = s.currentEntries[path] ?? {
                let id = s.nextInode
                s.nextInode += 1
                s.currentEntries[path] = id
                s.durableEntries[path] = id
                return id
            }()
            s.inodes[inode] = Inode(durable: bytes, current: bytes, pending: [])
        }
    }

    /// Every file in `directory` with its current content: a crash image's identity.
    func allContents(in directory: String) -> [String: [UInt8]] {
        state.withLock { s in
            s.currentEntries.filter { Self.name($0.key, in: directory) != nil }.mapValues { s.inodes[$0]!.current }
        }
    }

    func fileNames(in directory: String) -> [String] {
        (try? listDirectory(directory))?.sorted() ?? []
    }

    // MARK: - Crash images

    /// File systems a power loss at this moment could leave. The first is "only what was synced", the second
    /// "everything written" (a process crash: the page cache survives); the rest mix kept, dropped, torn and
    /// reordered unsynced writes with a prefix of unsynced directory operations.
    func crashImages(seed: UInt64, count: Int = 6) -> [SimulatedFileSystem] {
        let snapshot = state.withLock { $0 }
        var rng = SeededGenerator(seed: seed)
        let allChanges = snapshot.directoryChanges.count
        var images = [
            Self.image(from: snapshot, directoryPrefix: 0, rng: &rng) { inode, _ in inode.durable },
            Self.image(from: snapshot, directoryPrefix: allChanges, rng: &rng) { inode, _ in inode.current },
        ]
        for _ in 0..<max(0, count - 2) {
            let prefix = Int.random(in: 0...allChanges, using: &rng)
            let style = Int.random(in: 0..<3, using: &rng)
            images.append(Self.image(from: snapshot, directoryPrefix: prefix, rng: &rng) { inode, rng in
                Self.persist(inode, style: style, using: &rng)
            })
        }
        return images
    }

    private static func image(
        from snapshot: State, directoryPrefix: Int, rng: inout SeededGenerator,
        content: (Inode, inout SeededGenerator) -> [UInt8]
    ) -> SimulatedFileSystem {
        var next = State()
        next.directories = snapshot.directories
        var entries = snapshot.durableEntries
        for change in snapshot.directoryChanges.prefix(directoryPrefix) {
            switch change {
            case .link(let path, let inode): entries[path] = inode
            case .unlink(let path): entries[path] = nil
            }
        }
        next.currentEntries = entries
        next.durableEntries = entries
        next.nextInode = snapshot.nextInode
        for id in Set(entries.values).sorted() {
            let bytes = content(snapshot.inodes[id]!, &rng)
            next.inodes[id] = Inode(durable: bytes, current: bytes, pending: [])
        }
        return SimulatedFileSystem(next)
    }

    /// Applies a random choice of an inode's unsynced writes onto its durable image.
    /// Style 0: a prefix, the next write torn at sector granularity. 1: a random subset, any order.
    /// 2: every write, each sector of the last one independently kept or zeroed.
    private static func persist(_ inode: Inode, style: Int, using rng: inout SeededGenerator) -> [UInt8] {
        var bytes = inode.durable
        let pending = inode.pending
        guard !pending.isEmpty else { return bytes }
        func apply(_ change: Pending, sectors keep: (Int) -> Bool = { _ in true }) {
            switch change {
            case .truncate(let size):
                if bytes.count > size { bytes.removeLast(bytes.count - size) } else { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
            case .write(let offset, let data):
                if bytes.count < offset + data.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
                for (index, byte) in data.enumerated() where keep((offset + index) / 512) { bytes[offset + index] = byte }
            }
        }
        switch style {
        case 0:
            let prefix = Int.random(in: 0...pending.count, using: &rng)
            pending.prefix(prefix).forEach { apply($0) }
            if prefix < pending.count {
                var generator = rng
                apply(pending[prefix]) { _ in Bool.random(using: &generator) }
                rng = generator
            }
        case 1:
            for change in pending.shuffled(using: &rng) where Bool.random(using: &rng) { apply(change) }
        default:
            pending.dropLast().forEach { apply($0) }
            var generator = rng
            apply(pending.last!) { _ in Bool.random(using: &generator) }
            rng = generator
        }
        return bytes
    }

    // MARK: - JournalIO

    private func mutate<T>(_ operation: Operation, _ body: (inout State) throws -> T) throws -> T {
        try state.withLock { s in
            s.mutatingOperations += 1
            if s.crashed || s.crashAt.map({ s.mutatingOperations >= $0 }) == true {
                s.crashed = true
                throw JournalError(.io, "simulated crash before \(operation)", errno: EIO)
            }
            s.log.append(operation)
            if let fault = s.injector?(operation) {
                switch fault {
                case .fail(let code):
                    throw JournalError(.io, "injected failure of \(operation)", errno: code)
                case .partialWrite(let count, let code):
                    if case .write(_, let offset, _) = operation { s.partialWrite = (offset, count) }
                    _ = try body(&s)
                    throw JournalError(.io, "injected failure after \(count) bytes of \(operation)", errno: code)
                }
            }
            return try body(&s)
        }
    }

    /// The inode behind an open descriptor. Use of an unknown or closed one is a bug in the caller, not an
    /// I/O error the journal may handle: it is recorded as an issue as well as thrown.
    private func inode(_ file: FileDescriptor, _ s: inout State) throws -> Int {
        guard let id = s.descriptors[file.rawValue] else {
            let problem = "use of descriptor \(file.rawValue), which is not open"
            s.descriptorMisuse.append(problem)
            Issue.record(Comment(rawValue: problem))
            throw JournalError(.io, "bad descriptor", errno: EBADF)
        }
        return id
    }

    private func pathName(of file: FileDescriptor, _ s: State) -> String {
        let id = s.descriptors[file.rawValue]
        return s.currentEntries.first { $0.value == id }?.key ?? "fd\(file.rawValue)"
    }

    func createDirectory(_ path: String) throws {
        state.withLock { _ = $0.directories.insert(path) }
    }

    func listDirectory(_ path: String) throws -> [String] {
        state.withLock { s in s.currentEntries.keys.compactMap { Self.name($0, in: path) } }
    }

    /// The name of the file at `path` if it lies directly in `directory`. Compared as strings: through `NSString`
    /// path methods, listing directories was an eighth of the journal tests' CPU (they list at every recovery).
    private static func name(_ path: String, in directory: String) -> String? {
        guard path.hasPrefix(directory + "/") else { return nil }
        let name = path.dropFirst(directory.count + 1)
        return name.isEmpty || name.contains("/") ? nil : String(name)
    }

    func open(_ path: String, mode: FileOpenMode) throws -> FileDescriptor {
        if mode == .createNew {
            return try mutate(.create(path)) { s in
                guard s.currentEntries[path] == nil else { throw JournalError(.io, "exists: \(path)", errno: EEXIST) }
                let id = s.nextInode
                s.nextInode += 1
                s.inodes[id] = Inode()
                s.currentEntries[path] = id
                s.directoryChanges.append(.link(path, id))
                return Self.register(id, in: &s)
            }
        }
        return try state.withLock { s in
            if s.crashed { throw JournalError(.io, "simulated crash", errno: EIO) }
            guard let id = s.currentEntries[path] else { throw JournalError(.io, "'open' failed on \(path)", errno: ENOENT) }
            return Self.register(id, in: &s)
        }
    }

    private static func register(_ id: Int, in s: inout State) -> FileDescriptor {
        let fd = s.nextDescriptor
        s.nextDescriptor += 1
        s.descriptors[fd] = id
        return FileDescriptor(rawValue: fd)
    }

    func close(_ file: FileDescriptor) {
        let misuse: String? = state.withLock { s in
            if s.descriptors.removeValue(forKey: file.rawValue) != nil { return nil }
            if let lock = s.lockHolders.removeValue(forKey: file.rawValue) {
                s.locks.remove(lock)
                return nil
            }
            let problem = file.rawValue < s.nextDescriptor && file.rawValue >= 3
                ? "close of descriptor \(file.rawValue), which was already closed"
                : "close of descriptor \(file.rawValue), which this file system never opened"
            s.descriptorMisuse.append(problem)
            return problem
        }
        if let misuse { Issue.record(Comment(rawValue: misuse)) }
    }

    func size(of file: FileDescriptor) throws -> Int {
        try state.withLock { s in
            let id = try inode(file, &s)
            return s.inodes[id]!.current.count
        }
    }

    func read(_ file: FileDescriptor, at offset: Int, count: Int) throws -> [UInt8] {
        try state.withLock { s in
            if s.crashed { throw JournalError(.io, "simulated crash", errno: EIO) }
            let id = try inode(file, &s)
            let bytes = s.inodes[id]!.current
            guard offset < bytes.count else { return [] }
            let read = Array(bytes[offset..<min(bytes.count, offset + count)])
            s.bytesRead += read.count
            return read
        }
    }

    func write(_ file: FileDescriptor, _ bytes: [UInt8], at offset: Int) throws {
        let (id, path): (Int, String) = try state.withLock { s in
            let id = try inode(file, &s)
            return (id, pathName(of: file, s))
        }
        try mutate(.write(path, offset: offset, count: bytes.count)) { s in
            var data = bytes
            if let (_, count) = s.partialWrite {
                data = Array(bytes.prefix(count))
                s.partialWrite = nil
            }
            var node = s.inodes[id]!
            if node.current.count < offset + data.count {
                node.current += [UInt8](repeating: 0, count: offset + data.count - node.current.count)
            }
            node.current.replaceSubrange(offset..<(offset + data.count), with: data)
            node.pending.append(.write(offset: offset, bytes: data))
            s.inodes[id] = node
        }
    }

    func sync(_ file: FileDescriptor) throws {
        let (id, path): (Int, String) = try state.withLock { s in
            let id = try inode(file, &s)
            return (id, pathName(of: file, s))
        }
        try mutate(.sync(path)) { s in
            s.inodes[id]!.durable = s.inodes[id]!.current
            s.inodes[id]!.pending.removeAll()
        }
    }

    func truncate(_ file: FileDescriptor, to size: Int) throws {
        let (id, path): (Int, String) = try state.withLock { s in
            let id = try inode(file, &s)
            return (id, pathName(of: file, s))
        }
        try mutate(.truncate(path, size)) { s in
            var node = s.inodes[id]!
            if node.current.count > size { node.current.removeLast(node.current.count - size) } else { node.current += [UInt8](repeating: 0, count: size - node.current.count) }
            node.pending.append(.truncate(size))
            s.inodes[id] = node
        }
    }

    func rename(_ source: String, to destination: String) throws {
        try mutate(.rename(source, destination)) { s in
            guard let id = s.currentEntries.removeValue(forKey: source) else {
                throw JournalError(.io, "'rename' failed on \(source)", errno: ENOENT)
            }
            s.currentEntries[destination] = id
            s.directoryChanges.append(.unlink(source))
            s.directoryChanges.append(.link(destination, id))
        }
    }

    func remove(_ path: String) throws {
        let exists = state.withLock { $0.currentEntries[path] != nil }
        guard exists else { return }
        try mutate(.remove(path)) { s in
            s.currentEntries[path] = nil
            s.directoryChanges.append(.unlink(path))
        }
    }

    func syncDirectory(_ path: String) throws {
        try mutate(.syncDirectory(path)) { s in
            s.durableEntries = s.currentEntries
            s.directoryChanges.removeAll()
        }
    }

    func lockDirectory(_ path: String) throws -> [FileDescriptor]? {
        try state.withLock { s in
            if s.crashed { throw JournalError(.io, "simulated crash", errno: EIO) }
            guard !s.locks.contains(path) else { return nil }
            s.locks.insert(path)
            let fd = s.nextDescriptor
            s.nextDescriptor += 1
            s.lockHolders[fd] = path
            return [FileDescriptor(rawValue: fd)]
        }
    }
}

/// SplitMix64: a tiny deterministic generator, so every failing case can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
