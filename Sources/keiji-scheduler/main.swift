// keiji-scheduler: the daemon. Runs every enabled task on its schedule until SIGTERM or SIGINT, then stops
// gracefully (runs get a grace period, every outcome is journaled, a checkpoint is written).
//
//   keiji-scheduler            uses $HOME's workspace (~/keiji, ~/.keiji)
//   --ready-fd N               `keiji system --start` waits on N for `ready` or `refused <reason>`
//
// Exit status: 0 after a graceful stop, 1 if it cannot start (the reason is printed on stderr, which
// `keiji system --start` appends to the scheduler's log),
// 70 if the journal failed while running.

import Foundation
import KeijiCore
import KeijiJournal
import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print("""
        usage: keiji-scheduler [--recovery-mode strict|pointInTime|salvage]

        Runs the keiji scheduler for $HOME's workspace until SIGTERM/SIGINT. --recovery-mode says what to do
        if the journal's acknowledged data is damaged: refuse (strict, the default), keep what precedes the
        damage (pointInTime), or also keep intact records after it (salvage). Every repair is reported.
        """)
    exit(0)
}
func usageError(_ message: String, readiness: ServiceReadiness.Notifier?) -> Never {
    StandardError.write("keiji-scheduler: \(message)\n")
    readiness?.report(.refused(message))
    exit(64)
}

let readiness: ServiceReadiness.Notifier
switch ServiceReadiness.descriptor(in: arguments) {
case .success(let fd): readiness = ServiceReadiness.Notifier(fd: fd)
case .failure(let error): usageError(error.message, readiness: nil)
}
var recoveryMode = JournalOptions.RecoveryMode.strict
if let index = arguments.firstIndex(of: "--recovery-mode") {
    guard index + 1 < arguments.count, let mode = JournalOptions.RecoveryMode(rawValue: arguments[index + 1]) else {
        usageError("--recovery-mode takes strict, pointInTime or salvage", readiness: readiness)
    }
    recoveryMode = mode
}

let exitCode = await SchedulerDaemon.run(recoveryMode: recoveryMode, readiness: readiness)
exit(exitCode)
