import Foundation
import KeijiCore

/// The spawn path measured the way the scheduler takes it, for `keiji-bench`: a task's runs one after
/// another through ``RunExecutor`` and keiji-spawn-server, with the cached environment block and log
/// descriptor (the journal's write is not part of it: `keiji-bench journal` measures that).
public enum SpawnPathProbe {
    /// Runs `command` (a command task, in `directory`, logging to `log`) back to back for `seconds`; returns
    /// the runs per second. Throws if a run does not succeed.
    public static func runsPerSecond(command: String, directory: String, log: LogFile, seconds: Double) async throws -> Double {
        let definition = TaskDefinition(name: try TaskName("spawn-probe"), description: "spawn path probe", action: .command(command),
                                        schedule: ScheduleSpec(.every(1, .seconds)), directory: directory)
        let environments = TaskEnvironments(base: TaskEnvironments.inherited(from: ProcessInfo.processInfo.environment))
        let logs = TaskLogDescriptors()
        var count = 0
        let started = ContinuousClock.now
        let end = started + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < end {
            let fd = try logs.checkOut(log, task: definition.name, othersWriting: false)
            let result = await RunExecutor(definition: definition, runID: "probe-\(count)", slot: nil, logDescriptor: fd,
                                           environment: try environments.block(forTaskDirectory: directory), errorFile: nil).run(handle: RunHandle())
            logs.checkIn(fd)
            guard result.outcome == .succeeded else {
                throw KeijiError(.spawn, "the probe run \(count) \(result.outcome.rawValue): \(result.message ?? "")")
            }
            count += 1
        }
        return Double(count) / (ContinuousClock.now - started).secondsValue
    }
}

extension Duration {
    fileprivate var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
