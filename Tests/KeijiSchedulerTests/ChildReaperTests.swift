import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A failed `waitpid` must never turn into "exited 0": the run's end records it as a failure with its reason.
struct ChildReaperTests {
    @Test func waitingForAProcessThatIsNotOurChildIsAnError() {
        // Our own pid is never our child: waitpid fails with ECHILD and leaves the status word untouched (0,
        // which decodes as "exited 0").
        #expect(ChildReaper.waitBlocking(getpid()) == .waitFailed(ECHILD))
    }

    @Test func aFailedWaitIsRecordedAsAFailureWithItsReason() {
        let result = RunExecutor.result(of: .waitFailed(ECHILD), terminationReason: nil, timeout: nil, durationMs: 12)
        #expect(result.outcome == .failed)
        #expect(result.outcome.isFailure)
        #expect(result.message?.contains("waitpid failed") == true && result.message?.contains("errno \(ECHILD)") == true,
                "\(result.message ?? "no message")")
    }

    @Test func aReapedChildReportsItsRealStatus() throws {
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", "exit 7"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ) == 0)
        #expect(ChildReaper.waitBlocking(pid) == .exited(7))
    }
}
