/// An error from keiji's core: a stable code to match on, and a one-line message that says what went wrong
/// and what to do about it (the CLI prints exactly this line and exits non-zero).
public struct KeijiError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let value: String
        private init(_ value: String) { self.value = value }
        public static let invalidName = Code("invalidName")
        public static let invalidSetting = Code("invalidSetting")
        public static let invalidSchedule = Code("invalidSchedule")
        public static let notFound = Code("notFound")
        public static let alreadyExists = Code("alreadyExists")
        public static let notInitialized = Code("notInitialized")
        public static let io = Code("io")
        public static let database = Code("database")
        /// SQLite found the file damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`): a view is set aside and rebuilt.
        public static let databaseDamaged = Code("databaseDamaged")
        public static let conflict = Code("conflict")
        /// A running scheduler holds the journal: the command must go through the bus.
        public static let journalHeld = Code("journalHeld")
        /// The command does not apply to the task as it is now (disabled, in error, already running, …).
        public static let refused = Code("refused")
        /// The command would change nothing (the task is already so): nothing is journaled, and the CLI exits 0.
        public static let unchanged = Code("unchanged")
        public static let spawn = Code("spawn")
        /// A service keiji needs is not running (e.g. keiji-bus): nothing was sent, so nothing happened.
        public static let unavailable = Code("unavailable")
        /// The machine or the scheduler was out of descriptors, processes or memory at that moment (``ResourceShortage``):
        /// the same request may succeed later, so a run refused for it puts no task in error.
        public static let outOfResources = Code("outOfResources")
        public var description: String { value }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
