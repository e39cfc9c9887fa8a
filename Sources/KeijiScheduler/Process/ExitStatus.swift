/// How a run's process ended, as keiji-spawn-server reaped it.
public enum ExitStatus: Sendable, Equatable {
    case exited(Int32)
    case signaled(Int32)
    /// `waitpid` failed with this errno, so how the child ended is unknown. Never reported as a success.
    case waitFailed(Int32)
    /// The spawn server died while the run was going: the run's processes were killed and how it would
    /// have ended is unknown. Reported as `interrupted`: never a success, and no failure of the task's.
    case lost(String)

    /// Decodes a raw `waitpid` status.
    init(waitStatus status: Int32) {
        self = (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
    }
}
