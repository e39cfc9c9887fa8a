import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Which process holds an advisory `flock` on a file, from `/proc/locks`, for a message about a lock waited on too
/// long: "another keiji call" alone left the user to find a Ctrl-Z'd command in some other terminal.
enum LockHolder {
    /// The pid holding a lock on the file open as `fd` (found by its device and inode), nil when none is listed
    /// or `/proc/locks` cannot be read. The pid is the process that took the lock, which may have forked since.
    static func pid(holding fd: Int32) -> pid_t? {
        var info = stat()
        guard fstat(fd, &info) == 0, let text = procLocks() else { return nil }
        let dev = UInt64(info.st_dev)
        // Linux's encoding of a dev_t, as the kernel prints it in /proc/locks: "%02x:%02x:%lu".
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let file = String(format: "%02x:%02x:%lu", major, minor, UInt64(info.st_ino))
        for line in text.split(separator: "\n") {
            // `1: FLOCK  ADVISORY  WRITE 2622 fe:00:16303954 0 EOF`; a waiter's line has `->` after the number.
            let fields = line.split(separator: " ")
            guard fields.count >= 6, fields[1] != "->", fields[1] == "FLOCK", String(fields[5]) == file,
                  let pid = pid_t(fields[4]), pid != getpid() else { continue }
            return pid
        }
        return nil
    }

    /// `/proc/locks` read to its end with plain reads (``RegularFile/read(_:limit:followLinks:)``): its size reads as 0,
    /// and `String(contentsOfFile:)` missed the lock asked about when the file was long (a busy host).
    private static func procLocks() -> String? {
        guard case .success(let bytes) = RegularFile.read("/proc/locks", limit: 64 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// " (pid N)" for the holder of the lock on `fd`, or nothing when it cannot be found.
    static func naming(_ fd: Int32) -> String {
        pid(holding: fd).map { " (pid \($0))" } ?? ""
    }
}
