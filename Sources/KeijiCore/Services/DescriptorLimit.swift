#if canImport(Glibc)
import Glibc
#endif

/// The process's descriptor limit (`RLIMIT_NOFILE`), and what keiji's services keep under it.
///
/// libdispatch, which runs Swift concurrency and the services' signal and timer sources on Linux, opens
/// `/proc/<tid>/stat` about once a second to watch its worker threads, and kills the process with SIGILL
/// ("workq: registered worker exited prematurely") when that open fails. A service that reaches its limit
/// therefore dies, whatever it does with its own failed opens: the services refuse to start below
/// ``minimum``, and the scheduler leaves ``reserve`` descriptors unused by its runs' logs.
public enum DescriptorLimit {
    /// About 20 descriptors are open in a started scheduler, its log cache takes up to a quarter of the limit,
    /// the metrics and dashboard servers 33 connections each: 256 leaves room for all of it and the reserve.
    public static let minimum = 256
    /// Descriptors the scheduler leaves free for libdispatch and its own short-lived opens.
    public static let reserve = 16

    /// The lowest descriptor number the scheduler's own opens (runs' logs, HTTP connections) may not get: the limit
    /// less ``reserve``. The kernel gives the lowest free number, so one at the ceiling means all below it are taken.
    public static var ceiling: Int {
        let limit = current ?? minimum
        return limit == Int.max ? Int.max : limit - reserve
    }

    /// Why the scheduler refused a descriptor at ``ceiling``: the one wording of a run's log and an HTTP connection.
    public static func atCeiling(_ ceiling: Int) -> String {
        "the scheduler is at its descriptor limit (\(ceiling) in use, \(reserve) kept free for itself; ulimit -n)"
    }

    /// The soft limit now; `Int.max` when unlimited, `nil` if it cannot be read.
    public static var current: Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return limit.rlim_cur >= UInt64(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// The one-line refusal of a start below ``minimum`` (`ulimit -n 24` made the scheduler die of SIGILL a few
    /// seconds after starting), or `nil`.
    public static func startProblem(service: String) -> String? {
        guard let limit = current, limit < minimum else { return nil }
        return "the descriptor limit (ulimit -n) is \(limit): \(service) needs at least \(minimum); raise it and start again"
    }
}
