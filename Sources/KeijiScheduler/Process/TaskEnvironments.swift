import CSpawn
import Foundation
import KeijiCore
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The environment of each task's runs, encoded once: a defined base taken from the scheduler's environment
/// (``inherited(from:)``) plus the task folder's `.env`. A run costs one `stat` of the `.env`; the file is read and parsed again only when its
/// identity, size, modification or change time differ. Its owner and mode, from that same `stat`, are checked at every run
/// (``TrustedFile``): a `.env` another user could write is refused, cached or not. A task without a `.env` keeps no entry at all (its
/// runs use the scheduler's block), so the cache costs nothing for most tasks.
final class TaskEnvironments: Sendable {
    /// The variables each run sets itself: never taken from the scheduler's environment or a `.env`. `PWD` is the
    /// run's working directory, its task folder (the scheduler's own is where `keiji system --start` ran).
    static let perRunKeys = RunVariables.all.union(["PWD"])
    /// What runs take from the scheduler's environment, as cron and systemd give a defined one: who and where the
    /// user is, the locale, the zone and the temporary folder; and the bus ports, so `keiji` run by a task reaches
    /// the same bus. The rest was whatever the shell that last started the services held (a `PGPASSWORD`, an
    /// exported `DB_URL`, `OLDPWD`, `TERM`), and changed with each restart from another shell.
    static let inheritedKeys: Set<String> = ["HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR",
                                             "KEIJI_BUS_PUSH_PORT", "KEIJI_BUS_PULL_PORT"]
    /// `PATH` when the scheduler has none (started by `env -i`): its runs found no program by name.
    static let defaultPath = "/usr/local/bin:/usr/bin:/bin"
    /// At most this many `.env` files are kept; past it the cache starts afresh (a re-read is cheap).
    static let capacity = 4096

    private struct Stamp: Equatable {
        var device: UInt64, inode: UInt64, size: Int64
        var modified: timespec, changed: timespec
        var owner: uid_t, group: gid_t, mode: mode_t

        init?(_ path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            (device, inode, size) = (UInt64(info.st_dev), UInt64(info.st_ino), Int64(info.st_size))
            (modified, changed) = (info.st_mtim, info.st_ctim)
            (owner, group, mode) = (info.st_uid, info.st_gid, info.st_mode)
        }

        static func == (a: Stamp, b: Stamp) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size && a.owner == b.owner && a.group == b.group && a.mode == b.mode
                && a.modified.tv_sec == b.modified.tv_sec
                && a.modified.tv_nsec == b.modified.tv_nsec && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
        }
    }

    private struct Entry {
        var stamp: Stamp
        /// The `.env` variables, or (when `merged`) the whole environment because the `.env` overrides some
        /// of the scheduler's variables and no key may appear twice.
        var block: EnvironmentBlock
        var merged: Bool
    }

    private let base: [String: String]
    private let baseBlock: EnvironmentBlock
    private let entries = Mutex<[String: Entry]>([:])
    /// How many times a `.env` was read (for tests: a cached run reads nothing).
    private let reads = Atomic<Int>(0)

    /// The base of every run's environment: the scheduler's ``inheritedKeys`` and `LC_*` variables, with ``defaultPath``
    /// when it has no `PATH`.
    static func inherited(from scheduler: [String: String]) -> [String: String] {
        var base = scheduler.filter { inheritedKeys.contains($0.key) || $0.key.hasPrefix("LC_") }
        if base["PATH"] == nil { base["PATH"] = defaultPath }
        return base
    }

    init(base: [String: String]) {
        self.base = base
        baseBlock = EnvironmentBlock(base, excluding: Self.perRunKeys)
    }

    var dotEnvReads: Int { reads.load(ordering: .relaxed) }

    /// The block for a task whose folder is `directory`, without the per-run variables. `warn` gets one line naming
    /// the `.env` and the lines it has that set nothing or not all they seem to (``DotEnv/parse(_:)``), from the call
    /// that reads it new or changed: the task's log says so once per change of the file, not at every run.
    /// `warnedRecord`: a file that keeps the SHA-256 of the content last warned of, so that a restart (or an emptied
    /// cache) does not say it again; a sound `.env` removes it, and a content not warned of yet is said.
    /// Throws when the `.env` is there but cannot be read (``contents(of:)``), or another user could write it: the run
    /// cannot start without it.
    func block(forTaskDirectory directory: String, warnedRecord: String? = nil, warn: (String) -> Void = { _ in }) throws -> EnvironmentBlock {
        let path = directory + "/.env"
        // Stat before reading: a change between the two shows as a new stamp next time, never a stale block.
        guard let stamp = Stamp(path) else { return baseBlock }
        // Its variables run code as the owner (`LD_PRELOAD`, `PATH`): not when another user could have set them.
        do { try TrustedFile.check(owner: stamp.owner, group: stamp.group, mode: stamp.mode, at: path) } catch let error as KeijiError {
            throw KeijiError(.spawn, error.message)
        }
        let entry: Entry
        if let cached = entries.withLock({ $0[path] }), cached.stamp == stamp {
            entry = cached
        } else {
            reads.add(1, ordering: .relaxed)
            // Gone since the stat (deleted to be made anew): as if the run had come a moment earlier, before it was made.
            guard let data = try Self.contents(of: path) else { return baseBlock }
            let (values, problems) = DotEnv.parse(bytes: data)
            // The kernel's own refusal, E2BIG ("Argument list too long"), named neither the variable nor the file.
            if let (key, value) = values.sorted(by: { $0.key < $1.key }).first(where: { $0.key.utf8.count + $0.value.utf8.count + 2 > Self.variableLimit }) {
                throw KeijiError(.spawn, "\(key) in \(path) takes \(key.utf8.count + value.utf8.count + 2) bytes; Linux passes at most \(Self.variableLimit) bytes per variable (NAME=value and its NUL)")
            }
            // What a run takes of it: comments, blank lines and a key set again take nothing.
            let size = values.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 }
            if size > Self.sizeLimit {
                throw KeijiError(.spawn, "the variables in \(path) take \(size) bytes; a run's arguments and environment may take at most \(Self.sizeLimit)")
            }
            let merged = values.keys.contains { base[$0] != nil }
            entry = Entry(stamp: stamp, block: EnvironmentBlock(merged ? base.merging(values) { _, new in new } : values, excluding: Self.perRunKeys),
                          merged: merged)
            // Of two runs that read the same change at once, only the first says so.
            let first = entries.withLock {
                if $0.count >= Self.capacity { $0.removeAll() }
                let first = $0[path]?.stamp != stamp
                $0[path] = entry
                return first
            }
            if first, problems.isEmpty, let warnedRecord {
                unlink(warnedRecord)
            } else if first, !problems.isEmpty, !Self.wasWarned(Data(data), record: warnedRecord) {
                warn("\(path) " + problems.prefix(3).map(\.description).joined(separator: "; ") + (problems.count > 3 ? "; and \(problems.count - 3) more" : ""))
            }
        }
        if entry.merged { return entry.block }
        var block = baseBlock
        block.append(entry.block)
        return block
    }

    /// The most a `.env`'s variables may take (`NAME=value` and its NUL each): the spawn request's limit on a run's
    /// arguments and environment together.
    static let sizeLimit = Int(KEIJI_SPAWN_MAX_MESSAGE)

    /// The most one `NAME=value` string (with its NUL) may take in an `execve`.
    static let variableLimit = RunSize.perString

    /// The `.env`'s bytes, nil when it is gone (``DotEnv/read(_:)``); an error ends the run unstarted.
    private static func contents(of path: String) throws -> [UInt8]? {
        do { return try DotEnv.read(path) } catch let error as KeijiError { throw KeijiError(.spawn, error.message) }
    }

    /// Whether `record` holds the digest of `content` (it was warned of before); if not, it is made to.
    private static func wasWarned(_ content: Data, record: String?) -> Bool {
        guard let record else { return false }
        var hash = SHA256()
        hash.update(content)
        let digest = hash.hexDigest()
        if case .success(let recorded) = RegularFile.read(record, limit: 128), recorded == Array(digest.utf8) { return true }
        try? FileSystem.writeAtomically(Data(digest.utf8), to: record, mode: 0o600)
        return false
    }
}
