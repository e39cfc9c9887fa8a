/// The compact binary form of the records a busy scheduler writes thousands of times a second (`run.started`,
/// `run.finished` and `run.missed`) and of `task.saved`, which every start and every offline command replays
/// once per task. Replay decodes them without Foundation's JSON machinery (which cost ~20 µs a record, ~80 µs
/// for a definition), so a start after a long journal takes milliseconds, not seconds. Every other record
/// stays a JSON line, and old journals (all JSON) still replay: the first byte tells the forms apart. A
/// binary record starts with its format version, a byte in 0x01…0x08; JSON text never does (it starts with
/// `{`, or whitespace), so everything else goes to the JSON decoder exactly as before. `keiji journal dump`
/// and `export` print every record as JSON.
///
/// Version 1, byte by byte (docs/journal-format.md §10 has the table):
///
///     u8 0x01 (format version)   u8 record type (1 started, 2 finished, 3 missed, 4 saved)   u8 flags   varint at   …fields
///
/// A `task.saved` is its task id and the definition in ``DefinitionCodec``'s form (the checkpoint's). Type 4 was
/// added within version 1: a keiji from before it refuses such a record (the task goes into error), as it
/// refuses any type it does not know.
///
/// Integers are zigzag LEB128 varints (as protobuf's `sint64`), strings a LEB128 length and UTF-8 bytes,
/// enums one byte from the fixed tables below (never `rawValue` order, so renaming a case cannot change a code).
/// A flag bit says whether each optional field is present. Decoding is strict: a truncated record, bytes
/// left over, an unknown code or version, or a name today's rules refuse throws, and replay refuses the record.
public enum BinaryRecordCodec {
    /// The first byte of a version-1 binary record.
    public static let version1: UInt8 = 0x01
    /// First bytes reserved for versions of the binary form (control characters JSON text cannot start with).
    static let versionBytes: ClosedRange<UInt8> = 0x01...0x08

    /// Whether a stored record is in the binary form (of any version; an unknown one is refused when decoded).
    public static func isBinary(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let first = bytes.first else { return false }
        return versionBytes.contains(first)
    }

    enum RecordType: UInt8 {
        case runStarted = 1, runFinished = 2, runMissed = 3, taskSaved = 4

        var name: String {
            switch self {
            case .runStarted: "run.started"
            case .runFinished: "run.finished"
            case .runMissed: "run.missed"
            case .taskSaved: "task.saved"
            }
        }
    }

    /// Flag bits, per record type.
    enum Flag {
        // run.started
        static let hasSlot: UInt8 = 1 << 0
        static let hasInterruptions: UInt8 = 1 << 1
        // run.finished
        static let hasExitCode: UInt8 = 1 << 0
        static let hasSignal: UInt8 = 1 << 1
        static let hasLateness: UInt8 = 1 << 2
        static let hasMessage: UInt8 = 1 << 3
        static let isFinal: UInt8 = 1 << 4
    }

    // MARK: - Encoding

    /// The binary form of `entry`, or nil for a record type that stays JSON.
    static func encode(_ entry: JournalEntry) -> [UInt8]? {
        var out = Writer()
        switch entry.event {
        case .runStarted(let s):
            var flags: UInt8 = 0
            if s.slot != nil { flags |= Flag.hasSlot }
            if s.interruptions != nil { flags |= Flag.hasInterruptions }
            out.header(.runStarted, flags: flags, at: entry.at)
            out.string(s.runID)
            out.string(s.task.rawValue)
            if let slot = s.slot { out.signed(slot) }
            out.signed(Int64(s.attempt))
            out.byte(Codes.code(of: s.trigger))
            if let interruptions = s.interruptions { out.signed(Int64(interruptions)) }
        case .runFinished(let e):
            // A run refused for want of a resource (rare) stays JSON: a keiji from before ``RunEnd/transient`` ignores
            // its key and reads a plain failure, where a flag bit it does not know would make it refuse the record.
            if e.transient { return nil }
            var flags: UInt8 = 0
            if e.exitCode != nil { flags |= Flag.hasExitCode }
            if e.signal != nil { flags |= Flag.hasSignal }
            if e.latenessMs != nil { flags |= Flag.hasLateness }
            if e.message != nil { flags |= Flag.hasMessage }
            if e.final { flags |= Flag.isFinal }
            out.header(.runFinished, flags: flags, at: entry.at)
            out.string(e.runID)
            out.string(e.task.rawValue)
            out.byte(Codes.code(of: e.outcome))
            if let code = e.exitCode { out.signed(Int64(code)) }
            if let signal = e.signal { out.signed(Int64(signal)) }
            out.signed(e.durationMs)
            if let lateness = e.latenessMs { out.signed(lateness) }
            if let message = e.message { out.string(message) }
        case .runMissed(let m):
            out.header(.runMissed, flags: 0, at: entry.at)
            out.string(m.task.rawValue)
            out.signed(m.slot)
            out.signed(Int64(m.count))
            out.byte(Codes.code(of: m.reason))
        case .taskSaved(let definition, let taskID):
            out.header(.taskSaved, flags: 0, at: entry.at)
            out.string(taskID)
            DefinitionCodec.write(definition, to: &out)
        default:
            return nil
        }
        return out.bytes
    }

    struct Writer {
        var bytes: [UInt8] = []

        init() { bytes.reserveCapacity(48) }

        mutating func header(_ type: RecordType, flags: UInt8, at: Int64) {
            bytes.append(version1)
            bytes.append(type.rawValue)
            bytes.append(flags)
            signed(at)
        }

        mutating func byte(_ value: UInt8) { bytes.append(value) }

        mutating func unsigned(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            bytes.append(UInt8(rest))
        }

        mutating func signed(_ value: Int64) {
            unsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
        }

        mutating func string(_ value: String) {
            var value = value
            value.withUTF8 { utf8 in
                unsigned(UInt64(utf8.count))
                bytes.append(contentsOf: utf8)
            }
        }
    }

    // MARK: - Decoding

    /// Decodes a binary record (its first byte is not `{`).
    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> JournalEntry {
        var reader = Reader(bytes)
        let (type, flags, at) = try reader.header()
        let event: JournalEntry.Event
        switch type {
        case .runStarted:
            try reader.expectFlags(flags, within: Flag.hasSlot | Flag.hasInterruptions)
            let runID = try reader.string("runID")
            let task = try reader.taskName()
            let slot = flags & Flag.hasSlot != 0 ? try reader.signed("slot") : nil
            let attempt = try reader.int("attempt")
            let trigger = try Codes.trigger(try reader.byte("trigger"))
            let interruptions = flags & Flag.hasInterruptions != 0 ? try reader.int("interruptions") : nil
            event = .runStarted(RunStart(runID: runID, task: task, slot: slot, attempt: attempt, trigger: trigger, interruptions: interruptions))
        case .runFinished:
            try reader.expectFlags(flags, within: Flag.hasExitCode | Flag.hasSignal | Flag.hasLateness | Flag.hasMessage | Flag.isFinal)
            let runID = try reader.string("runID")
            let task = try reader.taskName()
            let outcome = try Codes.outcome(try reader.byte("outcome"))
            let exitCode = flags & Flag.hasExitCode != 0 ? try reader.int32("exitCode") : nil
            let signal = flags & Flag.hasSignal != 0 ? try reader.int32("signal") : nil
            let duration = try reader.signed("durationMs")
            let lateness = flags & Flag.hasLateness != 0 ? try reader.signed("latenessMs") : nil
            let message = flags & Flag.hasMessage != 0 ? try reader.string("message") : nil
            event = .runFinished(RunEnd(runID: runID, task: task, outcome: outcome, exitCode: exitCode, signal: signal, durationMs: duration,
                                        latenessMs: lateness, final: flags & Flag.isFinal != 0, message: message))
        case .runMissed:
            try reader.expectFlags(flags, within: 0)
            let task = try reader.taskName()
            let slot = try reader.signed("slot")
            let count = try reader.int("count")
            let reason = try Codes.missReason(try reader.byte("reason"))
            event = .runMissed(RunMissed(task: task, slot: slot, count: count, reason: reason))
        case .taskSaved:
            try reader.expectFlags(flags, within: 0)
            let taskID = try reader.string("taskID")
            event = .taskSaved(try DefinitionCodec.read(&reader), taskID: taskID)
        }
        try reader.expectEnd()
        return JournalEntry(at: at, event)
    }

    /// What can still be read from a binary record that does not decode: its type, its task and its time.
    static func peek(_ bytes: UnsafeRawBufferPointer) -> (type: String?, task: TaskName?, at: Int64?) {
        var reader = Reader(bytes)
        guard let (type, _, at) = try? reader.header() else {
            return (bytes.count > 1 && bytes[0] == version1 ? RecordType(rawValue: bytes[1])?.name : nil, nil, nil)
        }
        let inRange = InputRanges.recordMilliseconds.contains(at) ? at : nil
        switch type {
        case .runStarted, .runFinished: _ = try? reader.string("runID")
        case .taskSaved: _ = try? reader.string("taskID"); _ = try? reader.byte("definition flags")
        case .runMissed: break
        }
        return (type.name, try? reader.taskName(), inRange)
    }

    /// Reads a binary record front to back; every read checks the bounds.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        /// What is being read, for error messages.
        var subject = "binary record"

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        func failure(_ what: String) -> DecodingError {
            DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "\(subject): \(what)"))
        }

        mutating func header() throws -> (RecordType, UInt8, Int64) {
            guard bytes.count >= 3 else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "binary record of \(bytes.count) bytes")) }
            guard bytes[0] == version1 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown record format version \(bytes[0])"))
            }
            guard let type = RecordType(rawValue: bytes[1]) else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown binary record type \(bytes[1])"))
            }
            subject = "binary \(type.name) record"
            offset = 3
            return (type, bytes[2], try signed("at"))
        }

        func expectFlags(_ flags: UInt8, within known: UInt8) throws {
            if flags & ~known != 0 { throw failure("unknown flags \(flags & ~known)") }
        }

        mutating func expectEnd() throws {
            if offset != bytes.count { throw failure("\(bytes.count - offset) bytes left over") }
        }

        mutating func byte(_ field: String) throws -> UInt8 {
            guard offset < bytes.count else { throw failure("truncated in \(field)") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func unsigned(_ field: String) throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < bytes.count else { throw failure("truncated in \(field)") }
                let byte = bytes[offset]
                offset += 1
                // The tenth byte may carry only the top bit of a 64-bit value.
                if shift == 63, byte > 1 { throw failure("\(field) overflows 64 bits") }
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }

        mutating func signed(_ field: String) throws -> Int64 {
            let raw = try unsigned(field)
            return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        }

        mutating func int(_ field: String) throws -> Int {
            let value = try signed(field)
            guard let int = Int(exactly: value) else { throw failure("\(field) \(value) out of range") }
            return int
        }

        mutating func int32(_ field: String) throws -> Int32 {
            let value = try signed(field)
            guard let int = Int32(exactly: value) else { throw failure("\(field) \(value) out of range") }
            return int
        }

        mutating func utf8(_ field: String) throws -> UnsafeRawBufferPointer {
            let length = try unsigned(field)
            guard length <= UInt64(bytes.count - offset) else { throw failure("truncated in \(field)") }
            let start = offset
            offset += Int(length)
            return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        }

        /// ASCII text (run IDs, outcomes, triggers, names: nearly every string) is taken as it is. `String(validating:as:)`
        /// is generic over the encoding and looks its metadata up at every call: 190 ns a short string against 42 ns,
        /// and most of a 10,000-task snapshot's decoding (200,000 runs, three strings each).
        mutating func string(_ field: String) throws -> String {
            let utf8 = try utf8(field)
            if !utf8.contains(where: { $0 >= 0x80 }) { return String(decoding: utf8, as: UTF8.self) }
            guard let text = String(validating: utf8, as: UTF8.self) else { throw failure("\(field) is not UTF-8") }
            return text
        }

        mutating func taskName() throws -> TaskName {
            let raw = try string("task")
            do { return try TaskName(raw) } catch { throw failure("\((error as? KeijiError)?.message ?? "\(error)")") }
        }
    }

    /// The one-byte codes of the enums. Fixed forever within a format version: add codes, never reuse them.
    enum Codes {
        static func code(of trigger: RunTrigger) -> UInt8 {
            switch trigger {
            case .schedule: 1
            case .manual: 2
            case .retry: 3
            case .catchUp: 4
            case .recovery: 5
            }
        }

        static func trigger(_ code: UInt8) throws -> RunTrigger {
            switch code {
            case 1: .schedule
            case 2: .manual
            case 3: .retry
            case 4: .catchUp
            case 5: .recovery
            default: throw unknown("trigger", code)
            }
        }

        static func code(of outcome: RunOutcome) -> UInt8 {
            switch outcome {
            case .succeeded: 1
            case .failed: 2
            case .timedOut: 3
            case .stopped: 4
            case .spawnFailed: 5
            case .interrupted: 6
            }
        }

        static func outcome(_ code: UInt8) throws -> RunOutcome {
            switch code {
            case 1: .succeeded
            case 2: .failed
            case 3: .timedOut
            case 4: .stopped
            case 5: .spawnFailed
            case 6: .interrupted
            default: throw unknown("outcome", code)
            }
        }

        static func code(of reason: RunMissed.Reason) -> UInt8 {
            switch reason {
            case .overlap: 1
            case .downtime: 2
            case .error: 3
            }
        }

        static func missReason(_ code: UInt8) throws -> RunMissed.Reason {
            switch code {
            case 1: .overlap
            case 2: .downtime
            case 3: .error
            default: throw unknown("reason", code)
            }
        }

        static func unknown(_ field: String, _ code: UInt8) -> DecodingError {
            DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown \(field) code \(code)"))
        }
    }
}

extension BinaryRecordCodec.Writer {
    /// A double as its IEEE 754 bit pattern, 8 bytes little-endian: exact, whatever the value.
    mutating func float64(_ value: Double) {
        var bits = value.bitPattern
        for _ in 0..<8 {
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bits >>= 8
        }
    }
}

extension BinaryRecordCodec.Reader {
    /// A count of items that follow, each at least one byte long: bounded by the bytes left.
    mutating func count(_ field: String) throws -> Int {
        let value = try unsigned(field)
        guard value <= UInt64(bytes.count - offset) else { throw failure("\(field) count \(value) exceeds the bytes left") }
        return Int(value)
    }

    mutating func float64(_ field: String) throws -> Double {
        guard bytes.count - offset >= 8 else { throw failure("truncated in \(field)") }
        var bits: UInt64 = 0
        for index in 0..<8 { bits |= UInt64(bytes[offset + index]) << (8 * index) }
        offset += 8
        return Double(bitPattern: bits)
    }

    /// A one-byte code that `decode` knows, or a failure naming the field.
    mutating func code<Value>(_ field: String, _ decode: (UInt8) -> Value?) throws -> Value {
        let code = try byte(field)
        guard let value = decode(code) else { throw failure("unknown \(field) code \(code)") }
        return value
    }

    /// A value built by a parser that throws ``KeijiError`` (a cron expression, a time): its message, named.
    func parsing<Value>(_ field: String, _ parse: () throws -> Value) throws -> Value {
        do { return try parse() } catch let error as KeijiError { throw failure("\(field): \(error.message)") }
    }
}
