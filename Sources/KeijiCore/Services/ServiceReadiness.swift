import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// How a daemon tells `keiji system --start` that it is ready, or why it refused, instead of the CLI guessing
/// from a fixed wait: the CLI passes one end of a socket pair as `--ready-fd N`, and the daemon writes one
/// line on it, `ready` once it accepts work or `refused <reason>` when it cannot start, then closes it. A
/// daemon that dies first closes it without a line, which the CLI sees as end of file. Before its report it may
/// write `note <text>` lines: what the person starting it should know though it starts (a metrics port taken).
public enum ServiceReadiness {
    public static let argument = "--ready-fd"

    public enum Report: Equatable, Sendable {
        case ready
        case refused(String)
        case note(String)

        public var line: String {
            switch self {
            case .ready: "ready\n"
            case .refused(let reason): "refused " + Self.oneLine(reason) + "\n"
            case .note(let text): "note " + Self.oneLine(text) + "\n"
            }
        }

        /// The report in one line the daemon wrote (without its newline), or nil if it is none.
        public init?(line: Substring) {
            if line == "ready" {
                self = .ready
            } else if line.hasPrefix("refused ") {
                self = .refused(String(line.dropFirst("refused ".count)))
            } else if line.hasPrefix("note ") {
                self = .note(String(line.dropFirst("note ".count)))
            } else {
                return nil
            }
        }

        private static func oneLine(_ text: String) -> String { text.split(whereSeparator: \.isNewline).joined(separator: " ") }
    }

    /// The descriptor given as `--ready-fd N` (nil without the option), or an error line for a bad value.
    public static func descriptor(in arguments: [String]) -> Result<Int32?, KeijiError> {
        guard let index = arguments.firstIndex(of: argument) else { return .success(nil) }
        guard index + 1 < arguments.count, let fd = Int32(arguments[index + 1]), fd > 2, fcntl(fd, F_GETFD) != -1 else {
            return .failure(KeijiError(.invalidSetting, "\(argument) takes an open descriptor above 2"))
        }
        return .success(fd)
    }

    /// The daemon's end: reports once (later reports are ignored) and closes the descriptor. Thread-safe.
    public final class Notifier: Sendable {
        private let fd: Mutex<Int32?>

        /// Takes `fd` (nil: nobody is waiting, every report is a no-op). Marked close-on-exec, so no task
        /// the daemon runs holds the CLI's wait open.
        public init(fd: Int32?) {
            self.fd = Mutex(fd)
            if let fd { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }

        /// Sends `report`; `ready` and `refused` close the descriptor, a note leaves it open for the report.
        public func report(_ report: Report) {
            fd.withLock { value in
                guard let fd = value else { return }
                let bytes = Array(report.line.utf8)
                var written = 0
                while written < bytes.count {
                    // send, not write: a CLI that went away is EPIPE here, never a SIGPIPE that kills the daemon.
                    let n = bytes[written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n < 0, errno == EINTR { continue }
                    if n <= 0 { break }
                    written += n
                }
                if case .note = report { return }
                close(fd)
                value = nil
            }
        }
    }
}
