import Foundation

/// One journal record: a command, a firing, or a mark. Stored as one line of JSON,
/// `{"type":"task.saved","at":1795000000123,…}`, except the hot run records, which are stored in the compact
/// ``BinaryRecordCodec`` form; `keiji journal dump` and `export` print both as JSON. Decoders of old records
/// must keep working: add JSON fields as optional, never rename; change the binary form only by a new version.
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
        /// The task went into error on the node whose run failed (its last attempt, `continueOnError` false):
        /// published in a cluster so that every node stops firing it until `--resolve`. `errorText`: the task's
        /// error text on that node.
        case taskErrored(TaskName, errorText: String)
        // Firings
        case runStarted(RunStart)
        case runFinished(RunEnd)
        case runMissed(RunMissed)
        /// A run the previous scheduler left unfinished. `givenUp` is set when its slot has been interrupted too
        /// often to be re-run again: the reason, which becomes the task's error text. `endLost` is set when the run
        /// may well have ended, its end among the records a salvage lost (``RunEnd/endLostMessage(_:)``): it is not
        /// re-run, and it is not taken for the task's latest outcome.
        case runInterrupted(runID: String, task: TaskName, givenUp: String? = nil, endLost: String? = nil)
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
        case .taskErrored: "task.errored"
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
    public var isCommand: Bool {
        switch event {
        case .taskSaved, .taskEnabled, .taskDisabled, .taskDeleted, .taskResolved, .taskStopRequested, .taskTriggered, .taskErrored: true
        case .runStarted, .runFinished, .runMissed, .runInterrupted, .schedulerStarted, .schedulerStopped, .recoveryCompleted: false
        }
    }

    /// The task a record is about, if any.
    public var taskName: TaskName? {
        switch event {
        case .taskSaved(let definition, _): definition.name
        case .taskEnabled(let n), .taskDisabled(let n), .taskDeleted(let n), .taskResolved(let n), .taskStopRequested(let n), .taskTriggered(let n): n
        case .taskErrored(let n, _): n
        case .runStarted(let s): s.task
        case .runFinished(let e): e.task
        case .runMissed(let m): m.task
        case .runInterrupted(_, let task, _, _): task
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
    /// True when no retry follows: a failure then sets the task's error flag (unless it continues on error, or ``transient``).
    public var final: Bool
    public var message: String?
    /// A run that could not start because the machine or the scheduler was out of a resource at that moment
    /// (``KeijiError/Code/outOfResources``): a failure, retried as any, but even when final it puts the task in no
    /// error, as its next slot may find what was missing. Stored only when true (`"transient": true`), in the JSON form.
    public var transient: Bool {
        get { transientFlag == true }
        set { transientFlag = newValue ? true : nil }
    }
    private var transientFlag: Bool?

    private enum CodingKeys: String, CodingKey {
        case runID, task, outcome, exitCode, signal, durationMs, latenessMs, final, message
        case transientFlag = "transient"
    }

    public init(runID: String, task: TaskName, outcome: RunOutcome, exitCode: Int32?, signal: Int32?, durationMs: Int64,
                latenessMs: Int64?, final: Bool, message: String?, transient: Bool = false) {
        (self.runID, self.task, self.outcome, self.exitCode, self.signal, self.durationMs) = (runID, task, outcome, exitCode, signal, durationMs)
        (self.latenessMs, self.final, self.message) = (latenessMs, final, message)
        self.transient = transient
    }
}

extension RunEnd {
    /// The message of a run journaled as started whose process never began (the scheduler stopped, or a command
    /// or a failure came within the firing lead): `why`, then " before the run began". Readers tell such a run
    /// from one that ran by it (``neverBegan(message:)``): `task --runs` shows no start or duration for it.
    public static func notBegunMessage(_ why: String) -> String { why + notBegunSuffix }

    /// Whether `message` is a ``notBegunMessage(_:)``.
    public static func neverBegan(message: String?) -> Bool { message?.hasSuffix(notBegunSuffix) == true }

    private static let notBegunSuffix = " before the run began"

    /// The message of a run recovery settled without its end (`run.interrupted` with `endLost`): a salvage lost
    /// records after its start (`lost`, the LSN ranges), so it may have ended, and running its slot again could run it
    /// twice. Readers tell it by ``endLost(message:)``: `task --runs` shows no duration for it.
    public static func endLostMessage(_ lost: String) -> String { endLostWords + " (LSNs \(lost)); not re-run" }

    /// Whether `message` is an ``endLostMessage(_:)``.
    public static func endLost(message: String?) -> Bool { message?.hasPrefix(endLostWords) == true }

    /// How the run's message, and recovery's action for it (``RecoveryReport/InterruptedRun/endMayBeLostAction``), begin.
    public static let endLostWords = "its end may be among the records salvage lost"

    /// How long a run ran: `measured` (its `run.finished`'s `durationMs`, on the monotonic clock) when known, else from
    /// `start` (its `run.started`) to `end` on the wall clock (an interrupted run; a journal from before); nil without a
    /// start, for a run that never began (``neverBegan(message:)``) and for one whose end is unknown
    /// (``endLost(message:)``: `end` is then when recovery settled it). The one rule for the journal's run summaries and
    /// the view's rows. Never negative: a run that failed before its moment was journaled ending before its dated start
    /// by journals written before the engine dated such ends at that moment.
    public static func durationMs(start: Int64?, end: Int64, message: String?, measured: Int64?) -> Int64? {
        guard let start, !neverBegan(message: message), !endLost(message: message) else { return nil }
        return max(0, measured ?? end - start)
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
    /// The record as the journal stores it: the binary form for the hot run records (``BinaryRecordCodec``),
    /// one line of JSON (no trailing newline) for the rest.
    public func encoded() throws -> [UInt8] {
        if let binary = BinaryRecordCodec.encode(self) { return binary }
        return try jsonLine()
    }

    /// One line of JSON, no trailing newline, whichever form the journal stores: what `keiji journal dump --json`
    /// and `export` print, and what every record was before the binary form.
    public func jsonLine() throws -> [UInt8] {
        Array(try EntryCoding.encoder.encode(EntryWire(self)))
    }

    /// Decodes a stored record in either form.
    public static func decode(_ bytes: some Collection<UInt8>) throws -> JournalEntry {
        if let entry = try bytes.withContiguousStorageIfAvailable({ try decode(UnsafeRawBufferPointer($0)) }) { return entry }
        return try Array(bytes).withUnsafeBytes { try decode($0) }
    }

    /// Decodes a stored record in either form, straight from the journal's buffer.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> JournalEntry {
        if BinaryRecordCodec.isBinary(bytes) { return try BinaryRecordCodec.decode(bytes) }
        return try EntryCoding.decoder.decode(EntryWire.self, from: Data(bytes)).entry
    }

    /// A stored record (either form) as one line of JSON, for `keiji journal dump`.
    public static func jsonLine(of bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        BinaryRecordCodec.isBinary(bytes) ? try decode(bytes).jsonLine() : Array(bytes)
    }

    /// A line of `keiji journal export`: the record's JSON, or for a binary record that does not decode (a
    /// newer version), `{"undecodable":"<hex>"}`, so the export stays one JSON value per line.
    public static func exportLine(of bytes: UnsafeRawBufferPointer) -> [UInt8] {
        if let line = try? jsonLine(of: bytes) { return line }
        let hex = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        return Array(#"{"undecodable":"\#(hex)"}"#.utf8)
    }
}

enum EntryCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
    static let decoder = JSONDecoder()
}

/// The flat JSON shape of an entry.
private struct EntryWire: Codable {
    var entry: JournalEntry
    init(_ entry: JournalEntry) { self.entry = entry }

    enum Keys: String, CodingKey { case type, at, task, taskID, definition, run, pid, clean, report, givenUp, endLost, errorText }

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
        case .taskErrored(let n, let errorText):
            try c.encode(n, forKey: .task)
            try c.encode(errorText, forKey: .errorText)
        case .runStarted(let start): try c.encode(start, forKey: .run)
        case .runFinished(let end): try c.encode(end, forKey: .run)
        case .runMissed(let missed): try c.encode(missed, forKey: .run)
        case .runInterrupted(let id, let task, let givenUp, let endLost):
            try c.encode(id, forKey: .run)
            try c.encode(task, forKey: .task)
            try c.encodeIfPresent(givenUp, forKey: .givenUp)
            try c.encodeIfPresent(endLost, forKey: .endLost)
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
        case "task.errored": event = .taskErrored(try task(), errorText: try c.decode(String.self, forKey: .errorText))
        case "run.started": event = .runStarted(try c.decode(RunStart.self, forKey: .run))
        case "run.finished": event = .runFinished(try c.decode(RunEnd.self, forKey: .run))
        case "run.missed": event = .runMissed(try c.decode(RunMissed.self, forKey: .run))
        case "run.interrupted": event = .runInterrupted(runID: try c.decode(String.self, forKey: .run), task: try task(),
                                                     givenUp: try c.decodeIfPresent(String.self, forKey: .givenUp),
                                                     endLost: try c.decodeIfPresent(String.self, forKey: .endLost))
        case "scheduler.started": event = .schedulerStarted(pid: try c.decode(Int32.self, forKey: .pid))
        case "scheduler.stopped": event = .schedulerStopped(clean: try c.decode(Bool.self, forKey: .clean))
        case "recovery.completed": event = .recoveryCompleted(try c.decode(RecoveryReport.self, forKey: .report))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown record type \(type)")
        }
        entry = JournalEntry(at: at, event)
    }
}
