/// The binary form of a ``TaskDefinition``, shared by the checkpoint snapshot (version 2, ``SnapshotCodec``) and
/// the binary `task.saved` record (``BinaryRecordCodec``): one layout, so a definition costs the same few
/// microseconds to decode at every start, whether it comes from a checkpoint or from the records after it.
/// docs/journal-format.md §10 has the layout byte by byte; codes are fixed forever: add new ones, never reuse.
enum DefinitionCodec {
    /// Flag bits of a definition.
    private enum Flag {
        static let timeZone: UInt8 = 1 << 0, timeout: UInt8 = 1 << 1, rerunInterrupted: UInt8 = 1 << 2, continueOnError: UInt8 = 1 << 3
    }

    /// Stores what JSON stores, so a definition today's rules refuse decodes as it would from JSON (ranges are
    /// checked later, by ``Reducer/refuseInvalidDefinitions(in:)``): a cron expression as its source, parsed
    /// again; doubles as their bit patterns.
    static func write(_ definition: TaskDefinition, to out: inout BinaryRecordCodec.Writer) {
        let spec = definition.schedule, policy = definition.policy
        var flags: UInt8 = 0
        if spec.timeZone != nil { flags |= Flag.timeZone }
        if policy.timeoutSeconds != nil { flags |= Flag.timeout }
        if policy.rerunInterrupted { flags |= Flag.rerunInterrupted }
        if policy.continueOnError { flags |= Flag.continueOnError }
        out.byte(flags)
        out.string(definition.name.rawValue)
        out.string(definition.description)
        out.string(definition.directory)
        switch definition.action {
        case .binary(let path):
            out.byte(Codes.binary)
            out.string(path)
        case .command(let command):
            out.byte(Codes.command)
            out.string(command)
        }
        switch spec.schedule {
        case .every(let n, let unit):
            out.byte(Codes.every)
            out.signed(Int64(n))
            out.byte(Codes.code(of: unit))
        case .weekly(let days, let time):
            out.byte(Codes.weekly)
            out.unsigned(UInt64(days.count))
            for day in days { out.byte(UInt8(day.rawValue)) }
            out.signed(Int64(time.hour))
            out.signed(Int64(time.minute))
            out.signed(Int64(time.second))
        case .cron(let expression):
            out.byte(Codes.cron)
            out.string(expression.source)
        case .once(let at):
            out.byte(Codes.once)
            out.signed(at)
        }
        if let timeZone = spec.timeZone { out.string(timeZone) }
        out.signed(Int64(spec.jitterSeconds))
        if let timeout = policy.timeoutSeconds { out.float64(timeout) }
        out.float64(policy.graceSeconds)
        out.byte(Codes.code(of: policy.overlap))
        out.signed(Int64(policy.retries))
        out.float64(policy.retryBackoffSeconds)
        out.byte(Codes.code(of: policy.catchUp))
        out.signed(Int64(policy.catchUpLimit))
    }

    static func read(_ reader: inout BinaryRecordCodec.Reader) throws -> TaskDefinition {
        let flags = try reader.byte("definition flags")
        try reader.expectFlags(flags, within: Flag.timeZone | Flag.timeout | Flag.rerunInterrupted
                               | Flag.continueOnError)
        let name = try reader.taskName()
        let description = try reader.string("description")
        let directory = try reader.string("directory")
        let action: TaskAction = switch try reader.byte("action") {
        case Codes.binary: .binary(path: try reader.string("path"))
        case Codes.command: .command(try reader.string("command"))
        case let code: throw reader.failure("unknown action code \(code)")
        }
        let schedule: Schedule
        switch try reader.byte("schedule") {
        case Codes.every:
            let n = try reader.int("every")
            schedule = .every(n, try reader.code("unit", Codes.unit))
        case Codes.weekly:
            var days: [Weekday] = []
            for _ in 0..<(try reader.count("days")) { days.append(try reader.code("day") { Weekday(rawValue: Int($0)) }) }
            let (hour, minute, second) = (try reader.int("hour"), try reader.int("minute"), try reader.int("second"))
            schedule = .weekly(days: days, at: try reader.parsing("at") { try TimeOfDay(hour: hour, minute: minute, second: second) })
        case Codes.cron:
            let source = try reader.string("cron")
            schedule = .cron(try reader.parsing("cron") { try CronExpression(source) })
        case Codes.once:
            schedule = .once(at: try reader.signed("once"))
        case let code:
            throw reader.failure("unknown schedule code \(code)")
        }
        let timeZone = flags & Flag.timeZone != 0 ? try reader.string("timeZone") : nil
        let spec = ScheduleSpec(schedule, timeZone: timeZone, jitterSeconds: try reader.int("jitterSeconds"))
        var policy = RunPolicy()
        policy.timeoutSeconds = flags & Flag.timeout != 0 ? try reader.float64("timeoutSeconds") : nil
        policy.graceSeconds = try reader.float64("graceSeconds")
        policy.overlap = try reader.code("overlap", Codes.overlap)
        policy.retries = try reader.int("retries")
        policy.retryBackoffSeconds = try reader.float64("retryBackoffSeconds")
        policy.catchUp = try reader.code("catchUp", Codes.catchUp)
        policy.catchUpLimit = try reader.int("catchUpLimit")
        policy.rerunInterrupted = flags & Flag.rerunInterrupted != 0
        policy.continueOnError = flags & Flag.continueOnError != 0
        return TaskDefinition(name: name, description: description, action: action, schedule: spec, policy: policy, directory: directory)
    }

    /// The one-byte codes of the definition form (weekdays are their civil number, Sunday 0, as ``Weekday`` defines).
    /// Fixed forever within the version: add codes, never reuse them.
    private enum Codes {
        static let binary: UInt8 = 1, command: UInt8 = 2
        static let every: UInt8 = 1, weekly: UInt8 = 2, cron: UInt8 = 3, once: UInt8 = 4

        static func code(of unit: Schedule.Unit) -> UInt8 {
            switch unit {
            case .seconds: 1
            case .minutes: 2
            case .hours: 3
            }
        }

        static func unit(_ code: UInt8) -> Schedule.Unit? {
            switch code {
            case 1: .seconds
            case 2: .minutes
            case 3: .hours
            default: nil
            }
        }

        static func code(of overlap: OverlapPolicy) -> UInt8 {
            switch overlap {
            case .skip: 1
            case .allow: 2
            }
        }

        static func overlap(_ code: UInt8) -> OverlapPolicy? {
            switch code {
            case 1: .skip
            case 2: .allow
            default: nil
            }
        }

        static func code(of catchUp: CatchUpPolicy) -> UInt8 {
            switch catchUp {
            case .skip: 1
            case .once: 2
            case .all: 3
            }
        }

        static func catchUp(_ code: UInt8) -> CatchUpPolicy? {
            switch code {
            case 1: .skip
            case 2: .once
            case 3: .all
            default: nil
            }
        }
    }
}
