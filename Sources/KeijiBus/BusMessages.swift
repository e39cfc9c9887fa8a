import KeijiCore

/// A command from the CLI, in the seed's shape (`{"cmd":"stop","taskID":"…"}`) plus a request id and for
/// `save` the task definition. One JSON object per line, sent only after the connection's handshake
/// (``BusHandshake``); it carries no token.
public struct BusRequest: Codable, Sendable, Equatable {
    public var id: String
    /// `save`, `enable`, `disable`, `delete`, `resolve`, `stop`, `trigger`.
    public var cmd: String
    /// The task's name (the seed called it taskID).
    public var taskID: String?
    /// For `save`: the definition to journal.
    public var definition: TaskDefinition?
    /// For `save`: the stable task id (kept by the scheduler if the task already exists).
    public var uuid: String?
    /// For `save`: a create (`--create` without `--force`), refused if the task exists; in a cluster the command
    /// log decides, so of two nodes creating one name at once only one succeeds.
    public var create: Bool?

    public init(id: String, cmd: String, taskID: String?, definition: TaskDefinition? = nil, uuid: String? = nil, create: Bool? = nil) {
        self.id = id
        self.cmd = cmd
        self.taskID = taskID
        self.definition = definition
        self.uuid = uuid
        self.create = create
    }

    /// The request for a command event (`creating`: see ``create``).
    public init(id: String, event: JournalEntry.Event, creating: Bool = false) throws {
        switch event {
        case .taskSaved(let definition, let uuid):
            self.init(id: id, cmd: "save", taskID: definition.name.rawValue, definition: definition, uuid: uuid, create: creating ? true : nil)
        case .taskEnabled(let n): self.init(id: id, cmd: "enable", taskID: n.rawValue)
        case .taskDisabled(let n): self.init(id: id, cmd: "disable", taskID: n.rawValue)
        case .taskDeleted(let n): self.init(id: id, cmd: "delete", taskID: n.rawValue)
        case .taskResolved(let n): self.init(id: id, cmd: "resolve", taskID: n.rawValue)
        case .taskStopRequested(let n): self.init(id: id, cmd: "stop", taskID: n.rawValue)
        case .taskTriggered(let n): self.init(id: id, cmd: "trigger", taskID: n.rawValue)
        default: throw KeijiError(.conflict, "\(JournalEntry(at: 0, event).typeName) is not a command")
        }
    }

    /// The journal event this request asks for.
    public func event() throws -> JournalEntry.Event {
        func name() throws -> TaskName {
            guard let taskID else { throw KeijiError(.invalidName, "\(cmd) needs a taskID") }
            return try TaskName(taskID)
        }
        switch cmd {
        case "save":
            guard let definition else { throw KeijiError(.invalidSchedule, "save needs a definition") }
            if let taskID, taskID != definition.name.rawValue {
                throw KeijiError(.invalidName, "save of \(taskID) carries the definition of \(definition.name)")
            }
            return .taskSaved(definition, taskID: uuid ?? definition.name.rawValue)
        case "enable": return .taskEnabled(try name())
        case "disable": return .taskDisabled(try name())
        case "delete": return .taskDeleted(try name())
        case "resolve": return .taskResolved(try name())
        case "stop": return .taskStopRequested(try name())
        case "trigger": return .taskTriggered(try name())
        default: throw KeijiError(.conflict, "unknown command \"\(cmd)\"")
        }
    }
}

/// The answer to a ``BusRequest``: `{"id":…,"ok":true,"lsn":1234}` once the command is durable in the
/// journal, or `{"id":…,"ok":false,"code":"…","error":"…"}`.
public struct BusReply: Codable, Sendable, Equatable {
    public enum Code: String, Codable, Sendable {
        /// No scheduler is connected: the CLI applies the command offline through Core.
        case offline
        /// The connection's handshake failed: it does not know the bus token.
        case unauthorized
        /// keiji-bus is serving its maximum number of clients; retry.
        case busy
        /// Not JSON, too large, unknown command, missing fields.
        case invalid
        /// The scheduler refused it (no such task, …); `error` says why.
        case rejected
        /// It would change nothing (the task is already so); nothing was journaled, `error` says what is so.
        case unchanged
        /// A create of a task that exists (in a cluster, perhaps created on another node a moment before).
        case exists
        /// The scheduler went away before acknowledging: the command may or may not have been applied.
        case unacknowledged
    }

    public var id: String?
    public var ok: Bool
    public var lsn: UInt64?
    public var code: Code?
    public var error: String?

    public static func acknowledged(_ id: String, lsn: UInt64) -> BusReply { BusReply(id: id, ok: true, lsn: lsn, code: nil, error: nil) }
    public static func failure(_ id: String?, _ code: Code, _ error: String) -> BusReply { BusReply(id: id, ok: false, lsn: nil, code: code, error: error) }
}
