import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji task --build`: compiles one task of the workspace package with `swift build` (output shown as it
/// comes), asks the binary for its schedule and policies (`--schedule`), and returns the definition to journal,
/// its policies resolved as ``RunPolicyOverride/resolve(schedule:previous:sdk:cli:)`` says; ``install(_:for:)``
/// then puts the binary under `~/.keiji/exec/tasks/` (a step of its own, so the caller can take the
/// workspace-change lock for it and not for the compile).
struct TaskBuilder {
    let workspace: Workspace

    func build(_ name: TaskName, description: String, previous: (spec: ScheduleSpec, policy: RunPolicy)?,
               cli: RunPolicyOverride, givenFlags: [String]) throws -> (definition: TaskDefinition, built: String) {
        let directory = workspace.taskDirectory(name)
        guard FileSystem.exists(directory + "/main.swift") else {
            throw CLIError("task \(name) has no Swift sources in \(directory) (create it with `keiji task --create --name=\(name) --desc=…`)")
        }
        guard FileSystem.exists(workspace.root + "/Package.swift") else { throw CLIError("no workspace package; run `keiji init`") }
        // What is compiled, then run for its schedule: the task's sources and the SDK's.
        try workspace.checkFolders(downTo: directory)
        try workspace.checkFolders(downTo: workspace.root + "/sdk/Sources/KeijiTaskKit")
        let swift = try Self.swiftExecutable()
        try WorkspaceTemplates.refreshTaskList(workspace)  // folders made or removed by hand count too
        guard WorkspaceTemplates.taskFolders(workspace).contains(name.rawValue) else {
            // Left out of the package (made by hand or by an older keiji): the build would say only "no product named".
            throw CLIError(SwiftTaskNames.problem(with: name.rawValue, besideSwiftTasks: SwiftTaskNames.swiftTaskFolders(workspace))
                           ?? "task \(name) is not in \(workspace.root)/Package.swift")
        }
        try checkSources(of: directory)  // as they are now that the task list is brought in line
        Console.progress("building \(name) (swift build; the first build also compiles the SDK)…")
        let started = Date()
        let status = try Self.run(swift, ["build", "--package-path", workspace.root, "--scratch-path", workspace.buildDirectory,
                                          "--product", name.rawValue], echo: true)
        guard !HeldInterrupts.interrupted else { throw CLIError("interrupted: swift build was stopped; nothing was installed or saved") }
        guard status == 0 else { throw CLIError("swift build failed for task \(name) (exit \(status)); see the compiler output above") }
        let built = workspace.buildDirectory + "/debug/" + name.rawValue
        guard FileManager.default.isExecutableFile(atPath: built) else { throw CLIError("swift build did not produce \(built)") }
        Console.progress("built in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; reading its schedule…")

        // Only stdout is the JSON: what the program says on stderr meanwhile (a debug line, a library's log) is shown.
        let (scheduleStatus, output, said) = try Self.capture(built, ["--schedule"], directory: directory)
        guard scheduleStatus == 0 else {
            throw CLIError("\(name) --schedule failed (exit \(scheduleStatus)): \(Self.oneLine(said + "\n" + output))")
        }
        for line in said.split(separator: "\n") where !line.allSatisfy(\.isWhitespace) { Console.progress("\(name) --schedule said: \(line)") }
        // The last line: what the program printed on stdout before it is not the schedule.
        let json = output.split(separator: "\n").last { !$0.allSatisfy(\.isWhitespace) }.map(String.init) ?? ""
        let printed: ScheduleSpec
        let sdk: RunPolicyOverride
        do {
            printed = try JSONDecoder().decode(ScheduleSpec.self, from: Data(json.utf8))
            sdk = try JSONDecoder().decode(ProgramPolicies.self, from: Data(json.utf8)).policy ?? RunPolicyOverride()
        } catch {
            throw CLIError("\(name) --schedule printed no schedule keiji can read (\(Self.reason(error))): \(Self.quoted(output))")
        }
        let spec: ScheduleSpec
        let policy: RunPolicy
        do {
            (spec, policy) = try RunPolicyOverride.resolve(schedule: printed.schedule, previous: previous, sdk: sdk, cli: cli)
        } catch {
            let keptValueAtFault = previous != nil
                && (try? RunPolicyOverride.resolve(schedule: printed.schedule, previous: nil, sdk: sdk, cli: cli)) != nil
            throw CLIError("\(name)'s schedule or policies are invalid: "
                           + Self.attributed(Self.reason(error), givenFlags: givenFlags, keptValueAtFault: keptValueAtFault))
        }
        try cli.checkCatchUpLimit(with: policy.catchUp)  // the catch-up from schedule.swift or the previous build

        let definition = TaskDefinition(name: name, description: description, action: .binary(path: workspace.executable(for: name)),
                                        schedule: spec, policy: policy, directory: directory)
        return (definition, built)
    }

    /// What `swift build` runs (the two manifests) and compiles into the program the scheduler runs as you (the task's
    /// folder and the SDK's sources): each file and folder there is refused when another user owns it or could write it
    /// (``Workspace/checkFile(_:)``), as their folders are.
    private func checkSources(of directory: String) throws {
        for manifest in [workspace.root + "/Package.swift", workspace.root + "/sdk/Package.swift"] { try workspace.checkFile(manifest) }
        for folder in [directory, workspace.root + "/sdk/Sources/KeijiTaskKit"] {
            let entries = FileManager.default.enumerator(atPath: folder)
            while let entry = entries?.nextObject() as? String { try workspace.checkFile(folder + "/" + entry) }
        }
    }

    /// Installs the `built` binary atomically: copied beside the target, then renamed over it (a running task keeps
    /// its old inode).
    func install(_ built: String, for name: TaskName) throws {
        try FileSystem.createDirectory(workspace.executablesDirectory)
        let target = workspace.executable(for: name)
        let temporary = target + ".tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.copyItem(atPath: built, toPath: temporary)
        chmod(temporary, 0o700)
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CLIError("cannot install \(target): \(reason)")
        }
        Console.progress("installed \(target)")
    }

    /// The `"policy"` object of a task program's `--schedule` output (absent from programs built with an
    /// older SDK).
    private struct ProgramPolicies: Decodable {
        var policy: RunPolicyOverride?
    }

    /// The checks' messages name the flag of each value (`--jitter (8 s) must be …`): a value that came from
    /// schedule.swift, or was kept from the previous build, was blamed on a flag nobody gave, and nothing said
    /// how to clear a kept one. Unchanged when the flag was given.
    static func attributed(_ reason: String, givenFlags: [String], keptValueAtFault: Bool) -> String {
        guard let range = reason.range(of: #"--[a-z-]+"#, options: .regularExpression) else { return reason }
        let flag = String(reason[range])
        guard !givenFlags.contains(flag) else { return reason }
        guard keptValueAtFault else { return "in schedule.swift: \(reason)" }
        let clear = ["--jitter": "--jitter 0 clears a kept jitter", "--timeout": "--timeout none clears a kept timeout",
                     "--time-zone": "--time-zone default clears a kept zone"][flag]
            ?? "a \(flag) flag or schedule.swift's own value replaces a kept one"
        return "kept from the task's previous build: \(reason) (\(clear))"
    }

    static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " / ")
    }

    /// What a program printed, on one line and cut short, for an error that quotes it.
    static func quoted(_ output: String) -> String {
        let line = oneLine(output)
        if line.isEmpty { return "it printed nothing" }
        return "it printed \"" + (line.count > 300 ? line.prefix(300) + "…" : line) + "\""
    }

    static func reason(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error { return context.debugDescription }
        return "\(error)"
    }

    static func swiftExecutable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/opt/swift/usr/bin"] {
            let candidate = directory + "/swift"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CLIError("swift is not installed (looked on PATH and in /opt/swift/usr/bin); task builds need the Swift toolchain")
    }

    /// Runs a program with our stdout/stderr (so build progress shows as it happens); returns its status. SIGINT,
    /// SIGHUP and SIGTERM meanwhile are passed on to it and waited for: ended alone, the CLI left `swift build`
    /// running (even at a Ctrl-C, which did not reach its group) and the next build waited for it. The call then ends
    /// by the signal (``HeldInterrupts/endIfOneWasHeld()``).
    static func run(_ program: String, _ arguments: [String], echo: Bool) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.standardError
        process.standardError = FileHandle.standardError
        let interrupts = HeldInterrupts.hold()
        defer { interrupts.release() }
        try process.run()
        interrupts.passOn(to: process.processIdentifier)
        process.waitUntilExit()
        interrupts.passOn(to: 0)
        return process.terminationStatus
    }

    /// Runs a program and returns its status, its stdout and its stderr (read apart: mixed, a line on stderr broke
    /// the JSON on stdout).
    static func capture(_ program: String, _ arguments: [String], directory: String) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // stderr on a thread of its own: a program that fills one pipe while we wait on the other would block.
        let said = ReadResult()
        let reader = Thread { said.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, String(decoding: said.wait(), as: UTF8.self))
    }

    /// The stderr bytes `capture` reads on another thread.
    private final class ReadResult: @unchecked Sendable {
        private let done = NSCondition()
        private var data: Data?
        func set(_ value: Data) { done.lock(); data = value; done.signal(); done.unlock() }
        func wait() -> Data {
            done.lock()
            defer { done.unlock() }
            while data == nil { done.wait() }
            return data!
        }
    }
}
