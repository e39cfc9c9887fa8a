import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji system --stop` or `--restart` asked from a run of the scheduler it stops (a maintenance task). The
/// scheduler's stop waits for its runs, then kills what is left, this CLI with them: it was killed mid-restart and
/// the scheduler stayed down. So the CLI hands the command to a copy of itself in a session of its own, without the
/// run's variables (``DetachedSpawn``: the copy does the work itself, and is none of the run's processes), says where
/// the copy's output goes, and returns, so that the run can end before the stop waits for it. The copy, and so the
/// services it starts, takes the environment of the scheduler it replaces, not the run's (the task's `.env`, its
/// secrets and PATH, went into the new scheduler and from there into every task's base), and runs from HOME, not
/// the task's folder.
enum DetachedSystemCommand {
    /// The run this CLI is part of and its scheduler's pid, when that scheduler is `control`'s running one.
    static func askingRun(_ control: ServiceControl) throws -> (id: String, scheduler: pid_t)? {
        let environment = ProcessInfo.processInfo.environment
        guard let runID = environment[RunVariables.runID], let scheduler = environment[RunVariables.schedulerPID].flatMap({ pid_t($0) }),
              try control.runningPID(.scheduler) == scheduler else { return nil }
        return (runID, scheduler)
    }

    /// Starts the copy with this CLI's arguments, its output appended to the scheduler's log (after a line saying
    /// whose it is), and says so in one line.
    static func handOff(run: (id: String, scheduler: pid_t), workspace: Workspace) throws {
        let runID = run.id
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let arguments = Array(CommandLine.arguments.dropFirst())
        let command = (["keiji"] + arguments).joined(separator: " ")
        let log = LogFile(directory: workspace.serviceLogDirectory("scheduler"), baseName: "scheduler", rotate: false, maxSize: 1)
        try FileSystem.createDirectory(log.directory)
        let task = ProcessInfo.processInfo.environment[RunVariables.taskName].map { " of task \($0)" } ?? ""
        try log.append("\(command), asked by run \(runID)\(task), goes on in a process of its own; its output follows",
                       at: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)))
        // Read before anything is stopped; the same user's scheduler, so readable unless it just exited.
        let environment = ProcessEnvironment.entries(of: run.scheduler)
        if environment == nil {
            Console.progress("warning: cannot read the scheduler's environment (pid \(run.scheduler)); the services get this run's")
        }
        let home = (environment?.last { $0.hasPrefix("HOME=") }.map { String($0.dropFirst(5)) } ?? ProcessInfo.processInfo.environment["HOME"])
            .flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? "/"
        let pid = try DetachedSpawn.spawn(me, arguments: arguments, standardOutput: log.activePath, standardError: log.activePath,
                                          environment: environment, directory: home)
        Console.say("\(command): goes on detached (pid \(pid)), as the scheduler's stop would end this run with it; "
                    + "its output goes to \(log.activePath) (keiji system --logs --scheduler)")
    }
}
