#if canImport(Glibc)
import Glibc
#endif

/// The `errno`s that say the machine or the process was short of something at that moment, not that what was asked
/// is wrong: a run refused for one is tried again at its next slot, where a missing program or a bad `.env` waits for
/// its owner (the task goes into error).
public enum ResourceShortage {
    /// EAGAIN (no process to fork, a queue full), ENOMEM, EMFILE (the process's descriptors) and ENFILE (the system's).
    public static func isMomentary(errno code: Int32) -> Bool {
        code == EAGAIN || code == ENOMEM || code == EMFILE || code == ENFILE
    }

    /// ``KeijiError/Code/outOfResources`` for a failure with `errno` `code` that ``isMomentary(errno:)``, else `otherwise`.
    public static func code(errno code: Int32, otherwise: KeijiError.Code) -> KeijiError.Code {
        isMomentary(errno: code) ? .outOfResources : otherwise
    }
}
