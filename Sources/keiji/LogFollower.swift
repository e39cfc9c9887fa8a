import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji task --logs --follow`: prints what is appended to a task's log, as `tail -F` does. The scheduler rolls a
/// log by renaming it (then compresses and deletes the renamed file) and starting a new one: the follower reads
/// the file it holds open to its end before it opens the new one, and reads the new one from its start, so
/// nothing written around a roll is lost (it read the path every 300 ms, and missed what a roll moved away). It
/// ends when the task's log folder goes: the task was deleted.
struct LogFollower {
    private let path: String
    private let folder: String
    private var descriptor: Int32 = -1
    /// Device and inode of the file open in ``descriptor``.
    private var identity: [UInt64] = []

    /// Starts at the end of the active file: what is in it now was printed already. A file not there yet (a task that
    /// has not run) is read from its start when it appears.
    init(path: String, folder: String) {
        self.path = path
        self.folder = folder
        reopen(atEnd: true)
    }

    /// Prints what was appended since the last call. False when the log folder is gone (the task was deleted).
    mutating func printAppended() -> Bool {
        // The path first, then the open file to its end: a roll between the two cannot hide the old file's last lines.
        var info = stat()
        let found = stat(path, &info) == 0
        drain()
        guard found else { return FileSystem.exists(folder) }  // between a roll's rename and the new file
        if [UInt64(info.st_dev), UInt64(info.st_ino)] != identity {
            reopen(atEnd: false)  // rolled, or created since
            drain()
        }
        return true
    }

    func close() {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    private mutating func reopen(atEnd: Bool) {
        close()
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        identity = []
        var info = stat()
        guard descriptor >= 0, fstat(descriptor, &info) == 0 else { return }
        identity = [UInt64(info.st_dev), UInt64(info.st_ino)]
        if atEnd { lseek(descriptor, 0, SEEK_END) }
    }

    /// Copies the open file from where the last read stopped to its end onto stdout.
    private func drain() {
        guard descriptor >= 0 else { return }
        var info = stat()
        if fstat(descriptor, &info) == 0, off_t(info.st_size) < lseek(descriptor, 0, SEEK_CUR) {
            lseek(descriptor, 0, SEEK_SET)  // cut short under us: read it again from its start
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            Console.say(bytes: buffer[..<count])
        }
    }
}
