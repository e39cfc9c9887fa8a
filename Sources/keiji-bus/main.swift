import Dispatch
import Foundation
import KeijiBus
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

// keiji-bus: relays commands from the CLI (push endpoint) to the scheduler (pull endpoint): Unix sockets in
// ~/.keiji by default, or 127.0.0.1 ports with BUS_TRANSPORT=tcp in ~/keiji/settings.conf.
// Exits 0 on SIGTERM/SIGINT, 1 with a one-line reason if it cannot start.
// With `--ready-fd N` (as `keiji system --start` runs it) it reports `ready` on N once listening, or
// `refused <reason>`.

/// Keeps the signal sources alive for the life of the process (a released source stops delivering).
nonisolated(unsafe) var signalSources: [any DispatchSourceSignal] = []

/// Who waits for the bus to listen (`--ready-fd`); a no-op when started by hand.
let readiness: ServiceReadiness.Notifier = {
    switch ServiceReadiness.descriptor(in: Array(CommandLine.arguments.dropFirst())) {
    case .success(let fd): return ServiceReadiness.Notifier(fd: fd)
    case .failure(let error):
        StandardError.write("keiji-bus: cannot start: \(error.message)\n")
        exit(64)
    }
}()

func fail(_ message: String) -> Never {
    StandardError.write("keiji-bus: cannot start: \(message)\n")
    readiness.report(.refused(message))
    exit(1)
}

/// Log lines go to ~/.keiji/logs/services/bus/bus.log once `keiji init` has written settings (they say how
/// to rotate). `nil` before that: the caller logs to stderr instead, so nothing is lost silently.
func makeFileLogger(_ workspace: Workspace) -> (@Sendable (String) -> Void)? {
    guard let settings = try? Settings.load(from: workspace.settingsFile) else { return nil }
    let file = LogFile(service: "bus", workspace: workspace, settings: settings)
    _ = try? file.rotateIfNeeded(movingStandardError: true)
    return { message in
        let milliseconds = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        do { try file.append(message, at: milliseconds) } catch { logToStderr(message) }
    }
}

@Sendable func logToStderr(_ message: String) {
    StandardError.write("keiji-bus: \(message)\n")
}

if CommandLine.arguments.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
    print("""
        usage: keiji-bus   (normally started by `keiji system --start`)
        Relays commands from the keiji CLI to keiji-scheduler. Where it listens comes from ~/keiji/settings.conf:
          BUS_TRANSPORT=unix   sockets ~/.keiji/bus-push.sock and ~/.keiji/bus-pull.sock (default; one bus per user)
          BUS_TRANSPORT=tcp    127.0.0.1:BUS_PUSH_PORT (default 8005) and 127.0.0.1:BUS_PULL_PORT (default 8006)
        KEIJI_BUS_PUSH_PORT / KEIJI_BUS_PULL_PORT in the environment override the ports and imply tcp.
        Every connection is authenticated both ways with ~/.keiji/bus.token (HMAC-SHA256; the token is never sent).
        """)
    exit(0)
}

// Belt and braces: every send uses MSG_NOSIGNAL, but a peer vanishing must never kill the bus.
signal(SIGPIPE, SIG_IGN)

let workspace: Workspace
let token: String
let endpoints: BusEndpoints
if let problem = DescriptorLimit.startProblem(service: "keiji-bus") { fail(problem) }
do {
    workspace = try Workspace.current()
    // Settings are optional (the bus may start before `keiji init`), but a file that is there must be valid:
    // guessing the transport would split the bus from the CLI.
    let settings = FileSystem.exists(workspace.settingsFile) ? try Settings.load(from: workspace.settingsFile) : nil
    endpoints = BusEndpoints.resolve(workspace, settings: settings)
    token = try BusToken.loadOrCreate(workspace)
} catch {
    fail("\(error)")
}

let fileLog = makeFileLogger(workspace)
let log = fileLog ?? logToStderr
let server = BusServer(push: endpoints.push, pull: endpoints.pull, token: token, log: log)
// Before binding, so a SIGTERM that arrives during startup is still a clean exit 0: the handlers run on the
// main queue, which starts at dispatchMain() below. No SIG_IGN first (the Darwin idiom): on Linux the source installs
// a handler of its own, and a signal between the two was discarded, so a stop waited 30 s and killed the process.
for signalNumber in [SIGTERM, SIGINT] {
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .main)
    source.setEventHandler {
        log("stopping on \(signalNumber == SIGTERM ? "SIGTERM" : "SIGINT")")
        server.stop()
        exit(0)
    }
    source.resume()
    signalSources.append(source)
}

do {
    try server.start()
} catch {
    fileLog?("cannot start: \(error)")  // stderr gets the one line below either way
    fail("\(error)")
}

// `~/.keiji` deleted or replaced under the bus: its sockets and pid file went with it, so no keiji command reaches it,
// and a bus on TCP ports kept them from the next one. Checked every second (a stat); said on stderr, the log file it
// was started with, since a line by path would make the folder anew.
let identity = WorkspaceIdentity(workspace)
let identityCheck = DispatchSource.makeTimerSource(queue: .main)
identityCheck.schedule(deadline: .now() + 1, repeating: 1)
identityCheck.setEventHandler {
    guard let change = identity.change() else { return }
    StandardError.write("keiji-bus: stopping: \(change); no keiji command can reach this bus any more\n")
    server.stop()
    exit(0)
}
identityCheck.resume()

let listening = "keiji-bus listening on \(server.boundPush) (push) and \(server.boundPull) (pull)"
log("\(listening) (pid \(getpid()))")
print(listening)
fflush(nil)
readiness.report(.ready)

dispatchMain()
