import Foundation
import Testing

@testable import KeijiCore

/// The precedence of a (re)built task's zone, jitter and policies: CLI flag > SDK > previous > default.
struct RunPolicyOverrideTests {
    let schedule = Schedule.weekly(days: [.monday], at: try! TimeOfDay(parsing: "09:00"))

    @Test func withNothingSaidTheDefaultsHold() throws {
        let (spec, policy) = try RunPolicyOverride.resolve(schedule: schedule, previous: nil, sdk: .init(), cli: .init())
        #expect(spec == ScheduleSpec(schedule))
        #expect(policy == RunPolicy())
    }

    @Test func aRebuildKeepsThePreviousPolicies() throws {
        var old = RunPolicy()
        old.timeoutSeconds = 5
        old.retries = 2
        old.overlap = .allow
        let previous = (spec: ScheduleSpec(.every(10, .seconds), timeZone: "Europe/Paris", jitterSeconds: 3), policy: old)
        let (spec, policy) = try RunPolicyOverride.resolve(schedule: schedule, previous: previous, sdk: .init(), cli: .init())
        #expect(spec.schedule == schedule, "the schedule always comes from the program")
        #expect(spec.timeZone == "Europe/Paris" && spec.jitterSeconds == 3)
        #expect(policy == old)
    }

    @Test func theSDKBeatsThePreviousDefinitionAndTheCLIBeatsBoth() throws {
        var old = RunPolicy()
        old.retries = 1
        old.timeoutSeconds = 5
        old.catchUp = .skip
        let previous = (spec: ScheduleSpec(schedule, timeZone: "Asia/Tokyo"), policy: old)
        let sdk = RunPolicyOverride(timeZone: "Europe/Paris", timeoutSeconds: 30, retries: 3, continueOnError: true)
        let cli = RunPolicyOverride(timeZone: "America/New_York", retries: 7)
        let (spec, policy) = try RunPolicyOverride.resolve(schedule: schedule, previous: previous, sdk: sdk, cli: cli)
        #expect(spec.timeZone == "America/New_York")
        #expect(policy.retries == 7, "CLI over SDK")
        #expect(policy.timeoutSeconds == 30, "SDK over previous")
        #expect(policy.continueOnError, "SDK over default")
        #expect(policy.catchUp == .skip, "previous over default")
    }

    @Test func aFlagCanClearTheZoneAndTheTimeout() throws {
        var old = RunPolicy()
        old.timeoutSeconds = 5
        let previous = (spec: ScheduleSpec(schedule, timeZone: "Europe/Paris"), policy: old)
        let (spec, policy) = try RunPolicyOverride.resolve(schedule: schedule, previous: previous, sdk: .init(),
                                                           cli: RunPolicyOverride(timeZone: "", timeoutSeconds: 0))
        #expect(spec.timeZone == nil && policy.timeoutSeconds == nil)
    }

    @Test func theResultIsValidated() {
        #expect(throws: KeijiError.self) {
            try RunPolicyOverride.resolve(schedule: schedule, previous: nil, sdk: .init(timeZone: "Mars/Olympus"), cli: .init())
        }
        #expect(throws: KeijiError.self) {
            try RunPolicyOverride.resolve(schedule: schedule, previous: nil, sdk: .init(), cli: .init(retries: -1))
        }
    }

    @Test func theSDKsPolicyObjectDecodes() throws {
        let json = #"{"timeZone":"Europe/Paris","jitterSeconds":4,"timeoutSeconds":60,"overlap":"allow","catchUp":"all","catchUpLimit":3,"rerunInterrupted":false}"#
        let decoded = try JSONDecoder().decode(RunPolicyOverride.self, from: Data(json.utf8))
        #expect(decoded == RunPolicyOverride(timeZone: "Europe/Paris", jitterSeconds: 4, timeoutSeconds: 60, overlap: .allow, catchUp: .all,
                                             catchUpLimit: 3, rerunInterrupted: false))
    }
}
