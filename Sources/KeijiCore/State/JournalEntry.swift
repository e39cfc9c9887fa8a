import Foundation

/// One journal record: a command, a firing, or a mark. Encoded as one line of JSON,
/// `{"type":"run.started","at":1795000000123,…}`, so `keiji journal dump` and `lz4 -d` of an export are
/// readable. Decoders of old record types must keep working: add fields as optional, never rename.
public struct JournalEntry: Sendable, Equatable {
    /// When the record was made: milliseconds since the Unix epoch.
    public var at: Int64
    public var event: Event

    public init(at: Int64, _ event: Event) {
        self.at = at
        self.event = event
    }

    public enum Event: Sendable, Equatable {
        // Commands
        case taskSaved(TaskDefinition, taskID: String)
        case taskEnabled(TaskName)
        case taskDisabled(TaskName)
        case taskDeleted(TaskName)
        case taskResolved(TaskName)
        /// Stop the current run (if any); the schedule continues.
        case taskStopRequested(TaskName)
        /// Run now, outside the schedule.
        case taskTriggered(TaskName)
        // Firings
        case runStarted(RunStart)
        case runFinished(RunEnd)
        case runMissed(RunMissed)
        /// A run the previous scheduler left unfinished. `givenUp` is set when its slot has been interrupted too
        /// often to be re-run again: the reason, which becomes the task's error text.
        case runInterrupted(runID: String, task: TaskName, givenUp: String? = nil)
        // Marks
        case schedulerStarted(pid: Int32)
        case schedulerStopped(clean: Bool)
        case recoveryCompleted(RecoveryReport)
    }

    public var typeName: String {
        switch event {
        case .taskSaved: "task.saved"
        case .taskEnabled: "task.enabled"
        case .taskDisabled: "task.disabled"
        case .taskDeleted: "task.deleted"
        case .taskResolved: "task.resolved"
        case .taskStopRequested: "task.stopped"
        case .taskTriggered: "task.triggered"
        case .runStarted: "run.started"
        case .runFinished: "run.finished"
        case .runMissed: "run.missed"
        case .runInterrupted: "run.interrupted"
        case .schedulerStarted: "scheduler.started"
        case .schedulerStopped: "scheduler.stopped"
        case .recoveryCompleted: "recovery.completed"
        }
    }

    /// Commands are what users ask for (as opposed to firings and marks).
    public var isCommand: Bool { typeName.hasPrefix("task.") }

    /// The task a record is about, if any.
    public var taskName: TaskName? {
        switch event {
        case .taskSaved(let definition, _): definition.name
        case .taskEnabled(let n), .taskDisabled(let n), .taskDeleted(let n), .taskResolved(let n), .taskStopRequested(let n), .taskTriggered(let n): n
        case .runStarted(let s): s.task
        case .runFinished(let e): e.task
        case .runMissed(let m): m.task
        case .runInterrupted(_, let task, _): task
        case .schedulerStarted, .schedulerStopped, .recoveryCompleted: nil
        }
    }
}

/// Why a run started.
public enum RunTrigger: String, Codable, Sendable {
    case schedule, manual, retry, catchUp, recovery
}

public struct RunStart: Codable, Sendable, Equatable {
    public var runID: String
    public var task: TaskName
    /// The slot this run serves (seconds since the epoch); nil for manual runs.
    public var slot: Int64?
    public var attempt: Int
    public var trigger: RunTrigger
    /// How many earlier runs of this slot a scheduler restart interrupted (nil: none). Carried from run to
    /// run of the same slot, so recovery can give the slot up instead of crash-looping on it.
    public var interruptions: Int?
    public init(runID: String, task: TaskName, slot: Int64?, attempt: Int, trigger: RunTrigger, interruptions: Int? = nil) {
        (self.runID, self.task, self.slot, self.attempt, self.trigger) = (runID, task, slot, attempt, trigger)
        self.interruptions = interruptions
    }
}

public enum RunOutcome: String, Codable, Sendable {
    case succeeded, failed, timedOut, stopped, spawnFailed, interrupted
    public var isFailure: Bool { self == .failed || self == .timedOut || self == .spawnFailed }
}

public struct RunEnd: Codable, Sendable, Equatable {
    public var runID: String
    public var task: TaskName
    public var outcome: RunOutcome
    public var exitCode: Int32?
    public var signal: Int32?
    public var durationMs: Int64
    /// Milliseconds between the slot (plus jitter) and the spawn.
    public var latenessMs: Int64?
    /// True when no retry follows: a failure then sets the task's error flag (unless it continues on error).
    public var final: Bool
    public var message: String?
    public init(runID: String, task: TaskName, outcome: RunOutcome, exitCode: Int32?, signal: Int32?, durationMs: Int64,
                latenessMs: Int64?, final: Bool, message: String?) {
        (self.runID, self.task, self.outcome, self.exitCode, self.signal, self.durationMs) = (runID, task, outcome, exitCode, signal, durationMs)
        (self.latenessMs, self.final, self.message) = (latenessMs, final, message)
    }
}

public struct RunMissed: Codable, Sendable, Equatable {
    public enum Reason: String, Codable, Sendable { case overlap, downtime, error }
    public var task: TaskName
    /// The last slot missed (seconds since the epoch); `count` slots up to it were missed.
    public var slot: Int64
    public var count: Int
    public var reason: Reason
    public init(task: TaskName, slot: Int64, count: Int, reason: Reason) {
        (self.task, self.slot, self.count, self.reason) = (task, slot, count, reason)
    }
}

// MARK: - Codec

extension JournalEntry {
    /// One line of JSON, no trailing newline.
    public func encoded() throws -> [UInt8] {
        if let fast = EntryCoding.fastEncoded(self) { return fast }
        return Array(try EntryCoding.encoder.encode(EntryWire(self)))
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws -> JournalEntry {
        try EntryCoding.decoder.decode(EntryWire.self, from: Data(bytes)).entry
    }
}

enum EntryCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
    static let decoder = JSONDecoder()

    /// Hand-written JSON for the records a busy scheduler writes thousands of times a second (`run.started`,
    /// `run.finished`): the same keys and values JSONEncoder writes, in a fixed order, without its cost.
    /// The decoder reads both; `ReducerTests.everyRecordRoundTripsThroughItsJSONLine` checks they decode to the same entry.
    static func fastEncoded(_ entry: JournalEntry) -> [UInt8]? {
        var out = JSONWriter()
        switch entry.event {
        case .runStarted(let s):
            out.open("run.started", at: entry.at, key: "run")
            out.field("runID", string: s.runID, first: true)
            out.field("task", string: s.task.rawValue)
            if let slot = s.slot { out.field("slot", integer: slot) }
            out.field("attempt", integer: Int64(s.attempt))
            out.field("trigger", string: s.trigger.rawValue)
            if let interruptions = s.interruptions { out.field("interruptions", integer: Int64(interruptions)) }
        case .runFinished(let e):
            out.open("run.finished", at: entry.at, key: "run")
            out.field("runID", string: e.runID, first: true)
            out.field("task", string: e.task.rawValue)
            out.field("outcome", string: e.outcome.rawValue)
            if let code = e.exitCode { out.field("exitCode", integer: Int64(code)) }
            if let signal = e.signal { out.field("signal", integer: Int64(signal)) }
            out.field("durationMs", integer: e.durationMs)
            if let lateness = e.latenessMs { out.field("latenessMs", integer: lateness) }
            out.field("final", bool: e.final)
            if let message = e.message { out.field("message", string: message) }
        default:
            return nil
        }
        out.bytes.append(contentsOf: "}}".utf8)
        return out.bytes
    }
}

/// Appends JSON tokens to a byte buffer.
struct JSONWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(192) }

    mutating func open(_ type: String, at: Int64, key: String) {
        bytes.append(contentsOf: #"{"type":""#.utf8)
        bytes.append(contentsOf: type.utf8)
        bytes.append(contentsOf: #"","at":"#.utf8)
        bytes.append(contentsOf: String(at).utf8)
        bytes.append(contentsOf: #","\#(key)":{"#.utf8)
    }

    mutating func key(_ name: String, first: Bool) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: name.utf8)
        bytes.append(contentsOf: #"":"#.utf8)
    }

    mutating func field(_ name: String, integer: Int64, first: Bool = false) {
        key(name, first: first)
        bytes.append(contentsOf: String(integer).utf8)
    }

    mutating func field(_ name: String, bool: Bool, first: Bool = false) {
        key(name, first: first)
        bytes.append(contentsOf: (bool ? "true" : "false").utf8)
    }

    mutating func field(_ name: String, string: String, first: Bool = false) {
        key(name, first: first)
        bytes.append(UInt8(ascii: "\""))
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": bytes.append(contentsOf: #"\""#.utf8)
            case "\\": bytes.append(contentsOf: #"\\"#.utf8)
            case "\n": bytes.append(contentsOf: #"\n"#.utf8)
            case "\r": bytes.append(contentsOf: #"\r"#.utf8)
            case "\t": bytes.append(contentsOf: #"\t"#.utf8)
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    bytes.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
                } else {
                    bytes.append(contentsOf: String(scalar).utf8)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// The flat JSON shape of an entry.
private struct EntryWire: Codable {
    var entry: JournalEntry
    init(_ entry: JournalEntry) { self.entry = entry }

    enum Keys: String, CodingKey { case type, at, task, taskID, definition, run, pid, clean, report, givenUp }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(entry.typeName, forKey: .type)
        try c.encode(entry.at, forKey: .at)
        switch entry.event {
        case .taskSaved(let definition, let id):
            try c.encode(definition, forKey: .definition)
            try c.encode(id, forKey: .taskID)
        case .taskEnabled(let n), .taskDisabled(let n), .taskDeleted(let n), .taskResolved(let n), .taskStopRequested(let n), .taskTriggered(let n):
            try c.encode(n, forKey: .task)
        case .runStarted(let start): try c.encode(start, forKey: .run)
        case .runFinished(let end): try c.encode(end, forKey: .run)
        case .runMissed(let missed): try c.encode(missed, forKey: .run)
        case .runInterrupted(let id, let task, let givenUp):
            try c.encode(id, forKey: .run)
            try c.encode(task, forKey: .task)
            try c.encodeIfPresent(givenUp, forKey: .givenUp)
        case .schedulerStarted(let pid): try c.encode(pid, forKey: .pid)
        case .schedulerStopped(let clean): try c.encode(clean, forKey: .clean)
        case .recoveryCompleted(let report): try c.encode(report, forKey: .report)
        }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let type = try c.decode(String.self, forKey: .type)
        let at = try c.decode(Int64.self, forKey: .at)
        func task() throws -> TaskName { try c.decode(TaskName.self, forKey: .task) }
        let event: JournalEntry.Event
        switch type {
        case "task.saved": event = .taskSaved(try c.decode(TaskDefinition.self, forKey: .definition), taskID: try c.decode(String.self, forKey: .taskID))
        case "task.enabled": event = .taskEnabled(try task())
        case "task.disabled": event = .taskDisabled(try task())
        case "task.deleted": event = .taskDeleted(try task())
        case "task.resolved": event = .taskResolved(try task())
        case "task.stopped": event = .taskStopRequested(try task())
        case "task.triggered": event = .taskTriggered(try task())
        case "run.started": event = .runStarted(try c.decode(RunStart.self, forKey: .run))
        case "run.finished": event = .runFinished(try c.decode(RunEnd.self, forKey: .run))
        case "run.missed": event = .runMissed(try c.decode(RunMissed.self, forKey: .run))
        case "run.interrupted": event = .runInterrupted(runID: try c.decode(String.self, forKey: .run), task: try task(),
                                                     givenUp: try c.decodeIfPresent(String.self, forKey: .givenUp))
        case "scheduler.started": event = .schedulerStarted(pid: try c.decode(Int32.self, forKey: .pid))
        case "scheduler.stopped": event = .schedulerStopped(clean: try c.decode(Bool.self, forKey: .clean))
        case "recovery.completed": event = .recoveryCompleted(try c.decode(RecoveryReport.self, forKey: .report))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown record type \(type)")
        }
        entry = JournalEntry(at: at, event)
    }
}
