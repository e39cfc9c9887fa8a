import Foundation
import KeijiBus
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Starts, stops and checks keiji's services (`keiji-bus`, `keiji-scheduler`) as detached processes.
///
/// A pid file holds `<pid> <start time>`; a process counts as the service only if `/proc/<pid>/stat` still
/// shows that start time, so a reused pid is never mistaken for keiji (and never signalled).
struct ServiceControl {
    enum Service: String, CaseIterable {
        case bus, scheduler
        var binary: String { "keiji-\(rawValue)" }
    }

    let workspace: Workspace

    /// Beside the running `keiji`.
    func binaryPath(_ service: Service) throws -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = (me as NSString).deletingLastPathComponent + "/" + service.binary
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CLIError("\(service.binary) is not installed next to keiji (looked for \(path))")
        }
        return path
    }

    /// The service's pid when it is running. Throws when its pid file cannot be read (another user's workspace): taken
    /// as "not running", `--stop` said "was not running" and exited 0 while the services ran on. Something other than a
    /// file in its place (a FIFO a run made, on which `--status` waited for ever; a link) counts as no pid file.
    func runningPID(_ service: Service) throws -> pid_t? {
        let path = workspace.pidFile(service.rawValue)
        let bytes: [UInt8]
        switch RegularFile.read(path, limit: 128) {
        case .success(let read): bytes = read
        case .failure(.absent), .failure(.failed(ENOTDIR)), .failure(.notRegular): return holder(service)
        case .failure(let failure): throw CLIError("cannot read \(path): \(failure)")
        }
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let pid = pid_t(fields[0]), let started = UInt64(fields[1]), pid > 1,
              LiveProcess.startTime(of: pid) == started else { return holder(service) }
        return pid
    }

    /// The service found by what it holds, when its pid file is gone (a temp-file cleaner, a tidy-up of `~/.keiji/exec`)
    /// or names a process that is not it: the scheduler holds the journal folder's lock, the bus listens on its push
    /// socket (a bus on TCP is not found this way). Without this `--status` said OFFLINE and `--stop` "was not running"
    /// (exit 0) while both ran and took commands. Its pid file is written again, so later calls read it.
    private func holder(_ service: Service) -> pid_t? {
        let pid: pid_t?
        switch service {
        case .scheduler:
            let journal = open(workspace.journalDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard journal >= 0 else { return nil }
            defer { close(journal) }
            pid = LockHolder.pid(holding: journal)
        case .bus:
            pid = BusListenerProcess.pid(listeningOn: workspace.busPushSocket)
        }
        // The lock may be a keiji command's that opened the journal itself; the socket anything's of this user.
        guard let pid, LiveProcess.programName(of: pid) == service.binary, let started = LiveProcess.startTime(of: pid) else { return nil }
        try? recordPID(pid, started: started, of: service)
        return pid
    }

    /// The pid file ``runningPID(_:)`` reads: `<pid> <start time>`, the start time telling a reused pid.
    private func recordPID(_ pid: pid_t, started: UInt64, of service: Service) throws {
        try FileSystem.writeAtomically(Data("\(pid) \(started)\n".utf8), to: workspace.pidFile(service.rawValue))
    }

    /// Starts the service detached (``DetachedSpawn``: stdout /dev/null, stderr appended to its log) unless it is
    /// already running, then waits until it reports that it accepts work (``ReadinessWait``). Returns its pid, whether it was started now and the notes it sent while starting;
    /// throws the service's own reason when it refused or died while starting.
    func start(_ service: Service, arguments: [String] = [], wait: ReadinessWait = ReadinessWait()) throws -> (pid: pid_t, started: Bool, notes: [String]) {
        // Held until it is ready, refused or dead: another start sees it running. An interrupt while another call
        // holds it ends the wait, nothing started.
        let lock: WorkspaceChangeLock
        do {
            lock = try WorkspaceChangeLock.services(workspace, unless: wait.interrupted)
        } catch is WorkspaceChangeLock.Interrupted {
            throw Interrupted(spawned: false)
        }
        defer { lock.release() }
        if let pid = try runningPID(service) { return (pid, false, []) }
        if wait.interrupted() { throw Interrupted(spawned: false) }
        try workspace.createSystemDirectories()
        let path = try binaryPath(service)
        let log = workspace.serviceLogFile(service.rawValue)
        // Made a file of keiji's first (a link or a FIFO there is replaced, and said in it: ``LogFile/openForAppend()``);
        // the service's stderr is then opened on it without following a link.
        close(try LogFile(directory: workspace.serviceLogDirectory(service.rawValue), baseName: service.rawValue, rotate: false, maxSize: 1).openForAppend())

        // The readiness socket: the daemon gets its end as descriptor 3 (`--ready-fd 3`); ours reads the report.
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw CLIError("cannot start \(service.binary): socketpair: \(String(cString: strerror(errno)))")
        }
        let ours = ends[0]
        defer { close(ours) }
        // Moved above 3, so the dup2 to 3 below always makes a new descriptor (and clears close-on-exec).
        let theirs = fcntl(ends[1], F_DUPFD_CLOEXEC, 10)
        close(ends[1])
        guard theirs >= 0 else { throw CLIError("cannot start \(service.binary): \(String(cString: strerror(errno)))") }
        var theirsOpen = true
        defer { if theirsOpen { close(theirs) } }

        // Every line a service logs goes into its log with a time; what it prints on stdout only repeats a few of
        // them for someone who runs it by hand, so here stdout goes nowhere and the log has each line once.
        // stderr stays: a crash's message from the Swift runtime has nowhere else to go.
        let pid = try DetachedSpawn.spawn(path, arguments: arguments + [ServiceReadiness.argument, "3"], standardOutput: nil,
                                          standardError: log, descriptor3: theirs)
        // Only the daemon holds its end now, so its exit is our end of file.
        close(theirs)
        theirsOpen = false
        let started = LiveProcess.startTime(of: pid) ?? 0
        do {
            try recordPID(pid, started: started, of: service)
        } catch {
            // Without its pid file no keiji command sees the service: left running, it held the bus's sockets (or the
            // journal, firing tasks) until someone found and killed it by hand.
            end(pid)
            throw CLIError("\(error); \(service.binary) was stopped again")
        }

        let outcome = wait.wait(on: ours) { waited in
            Console.progress("\(service.rawValue): still starting (pid \(pid)) after \(waited.components.seconds) s" + (service == .scheduler ? ": recovering the journal" : ""))
        }
        switch outcome {
        case .ready(let notes):
            return (pid, true, notes)
        case .refused(let reason):
            _ = ReadinessWait.reap(pid)
            removePIDFile(service, naming: pid)
            throw CLIError("\(service.binary) refused to start: \(reason)")
        case .died:
            let ending = ReadinessWait.reap(pid) ?? "closed its readiness socket"
            removePIDFile(service, naming: pid)
            let words = ReadinessWait.lastWords(in: LogFile(directory: workspace.serviceLogDirectory(service.rawValue), baseName: service.rawValue,
                                                            rotate: false, maxSize: 1))
            throw CLIError("\(service.binary) \(ending) while starting" + (words.map { ": \($0)" } ?? "") + " (see \(log))")
        case .timedOut:
            throw CLIError("\(service.binary) (pid \(pid)) has not reported ready after \(wait.deadline.components.seconds) s; it keeps starting in the background (see keiji system --status and \(log))")
        case .interrupted:
            throw Interrupted(spawned: true)
        }
    }

    /// ``start(_:arguments:wait:)`` saw its wait's `interrupted` before the service was ready; `spawned`: the service
    /// was started and runs on (its pid file written) for the caller to stop, as a start stops what it started.
    struct Interrupted: Error {
        let spawned: Bool
    }

    /// SIGTERM, then up to `timeout` for it to go (SIGKILL after that). Returns whether it was running. A stop that
    /// takes over a second says so once: the scheduler gives its runs in progress their grace time (10 s and more),
    /// and a silent wait that long looked hung.
    /// How a stop ended.
    enum StopOutcome {
        case notRunning, stopped
        /// It had not ended `timeout` seconds after SIGTERM and was sent SIGKILL (said on stderr).
        case killed
    }

    /// How long a stop waits after SIGTERM before SIGKILL: the scheduler's own stop is bounded by its runs' grace
    /// (10 s), 3 s for runs past their termination and 5 s for the database; 20 s left a loaded machine 2 s of margin.
    static let stopTimeout: Double = 30

    /// Stops `service`; true when it was running (stopped or killed: ``stopping(_:timeout:unless:onceLocked:)`` tells which).
    func stop(_ service: Service, timeout: Double = stopTimeout, unless interrupted: () -> Bool = { false },
              onceLocked locked: () -> Void = {}) throws -> Bool {
        try stopping(service, timeout: timeout, unless: interrupted, onceLocked: locked) != .notRunning
    }

    /// SIGTERM, then SIGKILL if it has not ended within `timeout` seconds: said in one line, since a killed
    /// scheduler leaves no clean stop (its next start recovers as after a crash) and may leave its runs' processes.
    /// `interrupted` is asked while the stop waits for the services lock another call holds, and once more when it has
    /// it: once it says yes, the stop ends with ``WorkspaceChangeLock/Interrupted``, nothing stopped (a restart that
    /// has stopped nothing yet ends so). `locked` is called after that, before anything is stopped.
    func stopping(_ service: Service, timeout: Double = stopTimeout, unless interrupted: () -> Bool = { false },
                  onceLocked locked: () -> Void = {}) throws -> StopOutcome {
        // No ~/.keiji, nothing to stop: the lock is not taken, so a stop (or an uninstall) does not create the folder.
        // A lock that cannot be taken (another user's workspace) does not keep a stop from being tried; one held too
        // long does, and so does an interrupt during the wait.
        let lock: WorkspaceChangeLock?
        do {
            lock = FileSystem.exists(workspace.systemRoot) ? try WorkspaceChangeLock.services(workspace, unless: interrupted) : nil
        } catch let error as WorkspaceChangeLock.HeldTooLong {
            throw error
        } catch let error as WorkspaceChangeLock.Interrupted {
            throw error
        } catch {
            lock = nil
        }
        defer { lock?.release() }
        // One that came before the wait (or with the lock free at once) ends it too.
        if interrupted() { throw WorkspaceChangeLock.Interrupted() }
        locked()
        guard let pid = try runningPID(service) else {
            try? FileSystem.remove(workspace.pidFile(service.rawValue))
            return .notRunning
        }
        kill(pid, SIGTERM)
        let start = Date()
        let deadline = start.addingTimeInterval(timeout)
        var said = false
        while LiveProcess.isRunning(pid), Date() < deadline {
            if !said, Date().timeIntervalSince(start) >= 1 {
                said = true
                Console.progress(service == .scheduler ? "scheduler: stopping, its runs in progress get their grace time to end…" : "\(service.rawValue): stopping…")
            }
            usleep(50_000)
        }
        var outcome = StopOutcome.stopped
        if LiveProcess.isRunning(pid) {
            kill(pid, SIGKILL)
            usleep(100_000)
            outcome = .killed
            Console.progress("warning: \(service.binary) (pid \(pid)) had not stopped \(Int(timeout)) s after SIGTERM and was killed (SIGKILL)"
                             + (service == .scheduler ? ": its next start recovers as after a crash" : ""))
        }
        removePIDFile(service, naming: pid)
        return outcome
    }

    /// Ends a daemon this call spawned and reaps it: SIGTERM, then SIGKILL if it has not gone within 5 s.
    private func end(_ pid: pid_t) {
        kill(pid, SIGTERM)
        guard ReadinessWait.reap(pid) == nil else { return }
        kill(pid, SIGKILL)
        _ = ReadinessWait.reap(pid)
    }

    /// Removes the service's pid file if it still names `pid`: a file another start has written since names a
    /// service that runs, and without it no keiji command could see or stop that service.
    private func removePIDFile(_ service: Service, naming pid: pid_t) {
        let path = workspace.pidFile(service.rawValue)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              text.split(whereSeparator: \.isWhitespace).first == Substring(String(pid)) else { return }
        try? FileSystem.remove(path)
    }
}
