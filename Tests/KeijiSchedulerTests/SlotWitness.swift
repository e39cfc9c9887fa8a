import Foundation
import KeijiCore

/// A task that runs `true` every second, for tests that check something did not happen: they first wait for a witness
/// run at a slot past the moment in question, so the timer loop has come that far and whatever it would have fired by
/// then has begun. A fixed sleep could end before a loaded engine got there, and the check passed for nothing.
extension SchedulerHarness {
    func defineWitness() async throws {
        try await defineOffline(try commandTask("witness", "true"))
    }

    /// Waits until a run of the witness at `slot` (seconds) or later has finished.
    func witnessRan(fromSlot slot: Int64) async -> Bool {
        let witness = taskName("witness")
        return await wait {
            let entries = try entries()
            let runs = Set(entries.startedRuns.filter { $0.task == witness && ($0.slot ?? 0) >= slot }.map(\.runID))
            return entries.finishedRuns.contains { runs.contains($0.runID) }
        }
    }

    /// The wall clock in whole seconds, as slots are counted.
    static var nowSeconds: Int64 { Int64(Date().timeIntervalSince1970) }
}
