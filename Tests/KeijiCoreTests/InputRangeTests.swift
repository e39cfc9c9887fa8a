import Foundation
import Testing

@testable import KeijiCore

/// Every number in a task definition has a range (``InputRanges``), checked by `TaskDefinition.validated()`:
/// each edge passes, one step beyond fails with a one-line message naming the flag and the range.
struct InputRangeTests {
    func definition(_ schedule: Schedule = .every(10, .seconds), jitter: Int = 0, _ configure: (inout RunPolicy) -> Void = { _ in }) -> TaskDefinition {
        var policy = RunPolicy()
        configure(&policy)
        return TaskDefinition(name: name("bounded"), description: "d", action: .command("true"),
                              schedule: ScheduleSpec(schedule, jitterSeconds: jitter), policy: policy, directory: "/tmp")
    }

    /// The message of the error `validated()` throws, or nil when the definition passes.
    func refusal(_ definition: TaskDefinition) -> String? {
        do {
            _ = try definition.validated()
            return nil
        } catch {
            return (error as? KeijiError)?.message ?? "\(error)"
        }
    }

    func expectRefused(_ definition: TaskDefinition, naming flag: String, range: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let message = refusal(definition)
        #expect(message?.hasPrefix("\(flag) must be between \(range) (got ") == true, "\(message ?? "accepted")", sourceLocation: sourceLocation)
    }

    @Test func intervalIsOneSecondToAYearInEveryUnit() {
        #expect(refusal(definition(.every(1, .seconds))) == nil)
        #expect(refusal(definition(.every(31_536_000, .seconds))) == nil)
        #expect(refusal(definition(.every(525_600, .minutes))) == nil)
        #expect(refusal(definition(.every(8_760, .hours))) == nil)
        expectRefused(definition(.every(0, .seconds)), naming: "--every", range: "1 s and 365 days")
        expectRefused(definition(.every(31_536_001, .seconds)), naming: "--every", range: "1 s and 365 days")
        expectRefused(definition(.every(525_601, .minutes)), naming: "--every", range: "1 s and 365 days")
        expectRefused(definition(.every(8_761, .hours)), naming: "--every", range: "1 s and 365 days")
        // The issue's inputs: one that fits in Int64 seconds, one that overflows it, and the SDK's.
        #expect(refusal(definition(.every(3_000_000_000, .hours))) == "--every must be between 1 s and 365 days (got 3000000000h)")
        expectRefused(definition(.every(3_000_000_000_000_000, .hours)), naming: "--every", range: "1 s and 365 days")
        expectRefused(definition(.every(99_999_999_999_999, .hours)), naming: "--every", range: "1 s and 365 days")
        expectRefused(definition(.every(Int.max, .minutes)), naming: "--every", range: "1 s and 365 days")
    }

    @Test func timeoutIsOneMillisecondToSevenDaysAndFinite() {
        #expect(refusal(definition { $0.timeoutSeconds = 0.001 }) == nil)
        #expect(refusal(definition { $0.timeoutSeconds = 604_800 }) == nil)
        #expect(refusal(definition { $0.timeoutSeconds = nil }) == nil, "no timeout is allowed")
        for bad in [0.000_9, 604_800.001, 0, -1, 1e16, .nan, .infinity, -.infinity] {
            expectRefused(definition { $0.timeoutSeconds = bad }, naming: "--timeout", range: "1 ms and 7 days (604800 s)")
        }
        #expect(refusal(definition { $0.timeoutSeconds = 1e16 }) == "--timeout must be between 1 ms and 7 days (604800 s) (got 1e+16)")
    }

    @Test func graceIsZeroToAnHour() {
        #expect(refusal(definition { $0.graceSeconds = 0 }) == nil)
        #expect(refusal(definition { $0.graceSeconds = 3600 }) == nil)
        for bad in [-0.001, 3600.001, .nan, .infinity] {
            expectRefused(definition { $0.graceSeconds = bad }, naming: "--grace", range: "0 and 3600 seconds")
        }
    }

    /// The CLI's seconds are plain decimals to the millisecond: `Double(_:)` took `0x10` as 16 s and kept `1e-300`.
    @Test func secondsOnTheCommandLineArePlainDecimalsToTheMillisecond() {
        let accepted: [(String, Double)] = [("5", 5), ("0", 0), ("0.25", 0.25), ("1.5", 1.5), ("0.001", 0.001), ("3600.000", 3600), ("007", 7)]
        for (text, seconds) in accepted {
            #expect(InputRanges.plainSeconds(text) == seconds, "\(text)")
        }
        for text in ["0x10", "1e-300", "1e3", "1E3", "0x1p4", "nan", "inf", "infinity", "+5", "-1", ".5", "5.", "1.0001", "0.0000001", "",
                     " 5", "5 ", "1_000", "1,5", "١", "5s"] {
            #expect(InputRanges.plainSeconds(text) == nil, "\(text)")
        }
    }

    @Test func retriesAreZeroToAHundred() {
        #expect(refusal(definition { $0.retries = 0 }) == nil)
        #expect(refusal(definition { $0.retries = 100 }) == nil)
        expectRefused(definition { $0.retries = 101 }, naming: "--retries", range: "0 and 100")
        expectRefused(definition { $0.retries = -1 }, naming: "--retries", range: "0 and 100")
    }

    @Test func backoffIsZeroToAnHourAndEachDelayIsCappedAtADay() {
        #expect(refusal(definition { $0.retryBackoffSeconds = 0 }) == nil)
        #expect(refusal(definition { $0.retryBackoffSeconds = 3600 }) == nil)
        for bad in [-0.001, 3600.001, .nan, .infinity] {
            expectRefused(definition { $0.retryBackoffSeconds = bad }, naming: "--retry-backoff", range: "0 and 3600 seconds")
        }
        var policy = RunPolicy()
        policy.retryBackoffSeconds = 3600
        policy.retries = 100
        #expect(policy.retryDelaySeconds(afterAttempt: 1) == 3600)
        #expect(policy.retryDelaySeconds(afterAttempt: 2) == 7200)
        #expect(policy.retryDelaySeconds(afterAttempt: 100) == 86_400, "2^99 hours is cut to a day")
        policy.retryBackoffSeconds = .infinity
        #expect(policy.retryDelaySeconds(afterAttempt: 1) == 86_400)
    }

    @Test func catchUpLimitIsOneToAThousand() {
        #expect(refusal(definition { $0.catchUpLimit = 1 }) == nil)
        #expect(refusal(definition { $0.catchUpLimit = 1000 }) == nil)
        expectRefused(definition { $0.catchUpLimit = 0 }, naming: "--catch-up-limit", range: "1 and 1000")
        expectRefused(definition { $0.catchUpLimit = 1001 }, naming: "--catch-up-limit", range: "1 and 1000")
    }

    @Test func jitterIsZeroToADay() {
        #expect(refusal(definition(jitter: 0)) == nil)
        #expect(refusal(definition(.every(48, .hours), jitter: 86_400)) == nil)
        expectRefused(definition(jitter: -1), naming: "--jitter", range: "0 and 86400 seconds")
        expectRefused(definition(.every(48, .hours), jitter: 86_401), naming: "--jitter", range: "0 and 86400 seconds")
    }

    /// A jitter as long as the time between two slots would fire slots out of order (the timer took them for
    /// stalls, and recorded slots missed while it ran): refused, up to a second below the least gap.
    @Test func jitterIsShorterThanTheTimeBetweenSlots() throws {
        func refusesAt(_ schedule: Schedule, _ gap: Int, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(refusal(definition(schedule, jitter: gap - 1)) == nil, sourceLocation: sourceLocation)
            let message = refusal(definition(schedule, jitter: gap))
            #expect(message == "--jitter (\(gap) s) must be shorter than the time between two slots of the schedule (\(gap) s at the least): "
                    + "a longer one would fire slots out of order", sourceLocation: sourceLocation)
        }
        let ten = try TimeOfDay(parsing: "10:00")
        refusesAt(.every(10, .seconds), 10)
        refusesAt(.every(2, .minutes), 120)
        refusesAt(.weekly(days: [.monday, .tuesday, .friday], at: ten), 86_400 - 3600)  // a day can be an hour short
        refusesAt(.cron(try CronExpression("*/5 * * * *")), 300)
        refusesAt(.cron(try CronExpression("0,20,45 * * * * *")), 15)
        refusesAt(.cron(try CronExpression("30 1,4 * * *")), 3 * 3600 - 3600)
        refusesAt(.cron(try CronExpression("30 1,2 * * *")), 3600)
        refusesAt(.cron(try CronExpression("0 9 * * mon")), 86_400 - 3600)
        // A weekly schedule on one day, and a one-shot, allow the whole range.
        #expect(refusal(definition(.weekly(days: [.friday], at: ten), jitter: 86_400)) == nil)
        #expect(refusal(definition(.once(at: 2_000_000_000), jitter: 86_400)) == nil)
    }

    @Test func weekdaysAreGivenOnceEach() throws {
        let ten = try TimeOfDay(parsing: "10:00")
        #expect(refusal(definition(.weekly(days: Weekday.allCases, at: ten))) == nil)
        #expect(refusal(definition(.weekly(days: [.friday, .friday], at: ten))) == "--on names Friday twice (give each day once, 1 to 7 days)")
        #expect(refusal(definition(.weekly(days: [], at: ten)))?.hasPrefix("--on") == true)
    }

    @Test func cronStepsAreAtMostTheirFieldsSpan() throws {
        #expect(refusal(definition(.cron(try CronExpression("*/59 */23 */30 */11 */7")))) == nil)
        #expect(refusal(definition(.cron(try CronExpression("*/60 * * * *")))) == "--cron minute step must be between 1 and 59 (got 60)")
        #expect(refusal(definition(.cron(try CronExpression("0 0-23/24 * * *")))) == "--cron hour step must be between 1 and 23 (got 24)")
        #expect(refusal(definition(.cron(try CronExpression("0/99999 * * * * *")))) == "--cron second step must be between 1 and 59 (got 99999)")
        #expect(refusal(definition(.cron(try CronExpression("0 0 * * 1/8")))) == "--cron day of week step must be between 1 and 7 (got 8)")
    }

    /// What a task binary prints for `--schedule`: the shape decodes, the range check refuses it, nothing traps.
    @Test func sdkScheduleOutputGoesThroughTheSameCheck() throws {
        let huge = try JSONDecoder().decode(ScheduleSpec.self, from: Data(#"{"every":99999999999999,"unit":"hours"}"#.utf8))
        #expect(throws: KeijiError.self) { try huge.validated() }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ScheduleSpec.self, from: Data(#"{"every":1e30,"unit":"hours"}"#.utf8)) }
        let jittery = try JSONDecoder().decode(ScheduleSpec.self, from: Data(#"{"every":10,"unit":"seconds","jitterSeconds":9223372036854775807}"#.utf8))
        #expect(throws: KeijiError.self) { try jittery.validated() }
        // A policy from JSON (the bus, a record) is checked the same way.
        let policy = try JSONDecoder().decode(RunPolicy.self, from: Data(#"{"timeoutSeconds":1e16}"#.utf8))
        #expect(throws: KeijiError.self) { try policy.validated() }
    }

    /// The commands' one gate refuses what is out of range, whichever path it came by.
    @Test func theCommandValidatorRefusesOutOfRangeDefinitions() {
        let bad = definition { $0.timeoutSeconds = 1e16 }
        #expect(throws: KeijiError.self) { try CommandValidator.validate(.taskSaved(bad, taskID: "x"), against: SchedulerState()) }
        #expect(throws: Never.self) { try CommandValidator.validate(.taskSaved(definition(), taskID: "x"), against: SchedulerState()) }
    }

    /// Definitions replay keeps (refused ones included) never make the calculator or the conversions trap.
    @Test func timeArithmeticOnRefusedValuesDoesNotTrap() {
        for schedule: Schedule in [.every(Int.max, .hours), .every(3_000_000_000_000_000, .hours), .every(Int.max / 3600, .hours)] {
            let calculator = ScheduleCalculator(spec: ScheduleSpec(schedule), defaultTimeZone: TimeZone(identifier: "UTC")!, anchor: 1_795_000_000)
            _ = calculator.nextSlot(after: 1_795_000_000)
            _ = calculator.nextSlot(after: 1_700_000_000)
            _ = calculator.slots(after: 1_795_000_000, through: Int64.max, limit: 10)
        }
        let far = ScheduleCalculator(spec: ScheduleSpec(.every(1, .hours), jitterSeconds: Int.max), defaultTimeZone: TimeZone(identifier: "UTC")!,
                                     anchor: Int64.max - 10)
        #expect(far.nextSlot(after: Int64.max - 5) == nil, "past the end of Int64 there is no slot")
        #expect(far.slots(after: Int64.max - 20, through: Int64.max, limit: 5).slots.isEmpty)
        _ = far.jitter(taskID: "t", slot: 1)
        let task = TaskState(taskID: "t", definition: commandTask("far"), createdAt: 0, updatedAt: 0, anchor: 0, phaseMilliseconds: 999)
        #expect(task.fireTimeMilliseconds(slot: Int64.max / 10, calculator: far) == Int64.max)
        #expect(TimeArithmetic.milliseconds(fromSeconds: 1e16) == 1_000_000_000_000_000)
        #expect(TimeArithmetic.milliseconds(fromSeconds: .nan) == 0 && TimeArithmetic.milliseconds(fromSeconds: -.infinity) == 0)
        #expect(TimeArithmetic.milliseconds(fromSeconds: 1.5) == 1500)
    }

    /// A description and a command are held to what a run may pass to `execve` (``RunSize``): past it they were saved,
    /// and every run ended as `could not start`. A run gets its description as `TASK_DESCRIPTION`, a built task too.
    @Test func aDescriptionAndACommandFitWhatARunMayPass() {
        func task(_ description: Int, _ action: TaskAction) -> TaskDefinition {
            TaskDefinition(name: name("sized"), description: String(repeating: "d", count: description), action: action,
                           schedule: ScheduleSpec(.every(1, .hours)), directory: "/tmp")
        }
        let command = { (count: Int) in TaskAction.command(String(repeating: "c", count: count)) }
        #expect(refusal(task(131_054, .command("true"))) == nil)
        let description = "--desc takes 131055 bytes; a run gets it as TASK_DESCRIPTION, and Linux passes at most 131072 bytes per variable (NAME=value and its NUL): at most 131054"
        #expect(refusal(task(131_055, .command("true"))) == description)
        #expect(refusal(task(131_055, .binary(path: "/tmp/sized/.build/sized"))) == description)
        #expect(refusal(task(1, command(131_071))) == nil)
        #expect(refusal(task(1, command(131_072))) == "--command takes 131072 bytes; Linux passes at most 131072 bytes per argument (with its NUL)")
        // Each fits, both do not: 130018 bytes of TASK_DESCRIPTION=… and 130001 of the command.
        #expect(refusal(task(129_000, command(129_000))) == nil)
        #expect(refusal(task(130_000, command(130_000))) == "--command and --desc take 260019 bytes in a run; its arguments and environment may take at most 262144, 4096 of them kept for what each run adds (its variables, PATH, HOME, …)")
    }
}
