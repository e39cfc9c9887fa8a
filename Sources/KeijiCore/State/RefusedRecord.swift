import Foundation

/// A journal record replay could not apply: JSON that does not decode, a time outside 1970–9999, or a task
/// definition today's rules refuse (an old journal, a hand-made record). Replay never fails on one: the task
/// it names is put in error with the reason (its loop does not start), a record that names no known task is
/// skipped, and the recovery report lists each.
public struct RefusedRecord: Codable, Sendable, Equatable {
    /// The record's LSN; nil for a definition in the checkpoint that today's rules refuse.
    public var lsn: UInt64?
    /// The record's type (`task.saved`, …) when it could be read.
    public var type: String?
    public var task: TaskName?
    public var reason: String
    /// `task set to error` or `skipped`.
    public var action: String

    public init(lsn: UInt64?, type: String?, task: TaskName?, reason: String, action: String = "skipped") {
        (self.lsn, self.type, self.task, self.reason, self.action) = (lsn, type, task, reason, action)
    }

    /// What can still be read from a record that does not decode: its type, the task it names (a definition's
    /// name, `task`, or `run.task`) and its time (when it is an integer within ``InputRanges/recordMilliseconds``).
    static func peek(_ bytes: some Collection<UInt8>) -> (type: String?, task: TaskName?, at: Int64?) {
        let binary = Array(bytes).withUnsafeBytes { BinaryRecordCodec.isBinary($0) ? BinaryRecordCodec.peek($0) : nil }
        if let binary { return binary }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return (nil, nil, nil) }
        let definition = object["definition"] as? [String: Any]
        let run = object["run"] as? [String: Any]
        let rawName = (definition?["name"] as? String) ?? (object["task"] as? String) ?? (run?["task"] as? String)
        let at = (object["at"] as? Int).map(Int64.init).flatMap { InputRanges.recordMilliseconds.contains($0) ? $0 : nil }
        return (object["type"] as? String, rawName.flatMap { try? TaskName($0) }, at)
    }

    /// A one-line reason from a decoding error (its debug description, not Foundation's wrapper text).
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as KeijiError: return error.message
        case DecodingError.dataCorrupted(let context): return "does not decode: " + context.debugDescription
        case DecodingError.keyNotFound(let key, _): return "does not decode: no \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "does not decode: \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        default: return "does not decode: \(error)"
        }
    }
}

extension TaskDefinition {
    /// What a task whose only definition does not decode holds: it never runs (a one-shot in 1970, and the
    /// task is in error), and it keeps the name so the task shows in `keiji task --get` with the reason.
    static func standIn(for name: TaskName) -> TaskDefinition {
        TaskDefinition(name: name, description: "(definition refused at replay)", action: .command("false"),
                       schedule: ScheduleSpec(.once(at: 0)), directory: "")
    }
}
