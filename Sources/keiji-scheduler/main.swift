// keiji-scheduler: the daemon. Runs every enabled task on its schedule until SIGTERM or SIGINT, then stops
// gracefully (runs get a grace period, every outcome is journaled, a checkpoint is written).
//
//   keiji-scheduler            uses $HOME's workspace (~/keiji, ~/.keiji)
//
// Exit status: 0 after a graceful stop, 1 if it cannot start (the reason is printed on stderr, which
// `keiji system --start` appends to the scheduler's log),
// 70 if the journal failed while running.

import Foundation
import KeijiCore
import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--help") || arguments.contains("-h") {
    print("usage: keiji-scheduler\n\nRuns the keiji scheduler for $HOME's workspace until SIGTERM/SIGINT.")
    exit(0)
}

let exitCode = await SchedulerDaemon.run()
exit(exitCode)
