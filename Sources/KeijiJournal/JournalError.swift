/// An error from the journal: what went wrong, and what to do about it.
///
/// Match on ``code`` (`catch let error where error.code == .corruption`); the message is for people and says
/// the reason in words. The errno of a failed syscall is kept in ``errno`` as the cause, never folded into the code.
public struct JournalError: Error, Sendable, CustomStringConvertible {
    /// A stable category, extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case io, corruption, locked, failed, closed, recordTooLarge, invalidArgument, notFound
        }
        private let value: Value

        /// A syscall failed.
        public static let io = Code(value: .io)
        /// Data the journal acknowledged as durable is damaged, or the segment set has a gap.
        public static let corruption = Code(value: .corruption)
        /// Another process holds the journal's lock.
        public static let locked = Code(value: .locked)
        /// An earlier write or sync failed; the journal stopped and must be reopened (fail-stop).
        public static let failed = Code(value: .failed)
        /// The journal was closed.
        public static let closed = Code(value: .closed)
        /// A record exceeds ``JournalOptions/maxRecordSize``.
        public static let recordTooLarge = Code(value: .recordTooLarge)
        /// A caller passed something the journal cannot accept.
        public static let invalidArgument = Code(value: .invalidArgument)
        /// A file or LSN does not exist.
        public static let notFound = Code(value: .notFound)

        public var description: String { String(describing: value) }
    }

    public let code: Code
    public let message: String
    /// The errno of the failed syscall, for `.io` errors.
    public let errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// The message alone: it already says the errno's reason (a stopped journal's error quoting its cause said it twice).
    public var description: String { message }

    /// `error` worded for people: what the journal was doing, on which file, and why ("cannot append to the journal
    /// (/…/seg-….jnl): No space left on device"), rather than a syscall on a descriptor number. Keeps the code and errno;
    /// an error that is not an I/O failure (the segment was closed) is returned as it is.
    static func failure(_ action: String, file: String, _ error: any Error) -> JournalError {
        guard let cause = error as? JournalError else { return JournalError(.io, "\(action) (\(file)): \(error)") }
        guard cause.code == .io else { return cause }
        let reason = cause.errno.map { String(cString: strerror($0)) } ?? cause.message
        return JournalError(.io, "\(action) (\(file)): \(reason)", errno: cause.errno)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
