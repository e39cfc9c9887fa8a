import Foundation
import KeijiJournal

/// One fact of a recovery report in words: `keiji system --status` prints the entries as aligned lines and the
/// dashboard's `/system` page as a definition list, so both say the same things in the same words (a fact added to
/// the report is added here once).
public struct RecoveryReportEntry: Sendable, Equatable {
    public var label: String
    public var value: String
    /// One line per item behind the value: each interrupted run, each task's missed slots, each refused record…
    public var details: [String] = []

    public init(_ label: String, _ value: String, details: [String] = []) {
        (self.label, self.value, self.details) = (label, value, details)
    }
}

extension RecoveryReport {
    /// How many of a node's own unfinished claims are listed one by one (`recovery.json` has them all).
    public static let ownClaimsListed = 20

    /// The report as entries. `instant` words a moment given in milliseconds and `slot` a slot given in seconds:
    /// the CLI prints ISO 8601 in UTC, the dashboard the workspace's `TIME_ZONE`.
    public func entries(instant: (Int64) -> String, slot: (Int64) -> String) -> [RecoveryReportEntry] {
        let shutdown = switch previousShutdown {
        case .crash: "CRASH"
        case .clean: "clean shutdown"
        case .firstStart: "first start"
        }
        var out = [
            RecoveryReportEntry("started", "\(instant(startedAt)) after a \(shutdown)"),
            RecoveryReportEntry("replayed", "\(journal.recordsReplayed) records in \(String(format: "%.3f", journal.replaySeconds)) s "
                + "(checkpoint at LSN \(journal.checkpointLSN.map(String.init) ?? "none"), journal ends at \(journal.lastLSN))"),
            RecoveryReportEntry("repaired", "\(journal.bytesRepaired) bytes" + (journal.repairs.isEmpty ? "" : ": " + journal.repairs.joined(separator: "; "))),
        ]
        if let lost = journal.lostLSNs, !lost.isEmpty {
            out.append(RecoveryReportEntry("LOST", "acknowledged records at LSNs \(LSNRange.list(lost)) (by the repairs above)"))
        }
        let endLost = interruptedRuns.filter(\.endMayBeLost).count
        out.append(RecoveryReportEntry("interrupted", interruptedRuns.isEmpty ? "none" : "\(interruptedRuns.count - endLost) run(s)"
                                           + (endLost > 0 ? ", and \(endLost) whose end salvage may have lost" : ""),
                                       details: interruptedRuns.map { "\($0.task) run \($0.runID) started \(instant($0.startedAt)): \($0.action)" }))
        if let retriesResumed {
            out.append(RecoveryReportEntry("retries", "\(retriesResumed.count) resumed (a stop or a crash dropped them during their backoff)",
                                           details: retriesResumed.map {
                                               "\($0.task)" + ($0.slot.map { " slot \(slot($0))" } ?? " (manual run)") + ": attempt \($0.attempt) at \(instant($0.dueAt))"
                                           }))
        }
        out.append(RecoveryReportEntry("missed slots", missedSlots.isEmpty ? "none" : "\(missedSlots.reduce(0) { $0 + $1.count }) in \(missedSlots.count) task(s)",
                                       details: missedSlots.map {
                                           "\($0.task): \($0.count) slot(s) \(slot($0.firstSlot))…\(slot($0.lastSlot)), policy \($0.policy.rawValue), \($0.runs) run(s) started"
                                       }))
        let refused = refusedRecords ?? []
        out.append(RecoveryReportEntry("refused", refused.isEmpty ? "none" : "\(refused.count) record(s) (their tasks are in error)",
                                       details: refused.map {
                                           "\($0.task.map(\.rawValue) ?? "(no task)") \($0.type ?? "record") at LSN \($0.lsn.map(String.init) ?? "checkpoint"): \($0.reason) (\($0.action))"
                                       }))
        out.append(RecoveryReportEntry("re-applied", "\(commandsReapplied) command(s) to the query view" + (viewRebuilt ? " (view rebuilt)" : "")))
        if let viewAheadOfJournalAt {
            out.append(RecoveryReportEntry("LOST", Self.viewAheadText(view: viewAheadOfJournalAt, journal: journal.lastLSN)))
        }
        if let journalAheadAt {
            out.append(RecoveryReportEntry("CLOCK", Self.journalAheadText(by: journalAheadAt - startedAt) + " (latest record \(instant(journalAheadAt)))"))
        }
        if let cluster {
            out.append(RecoveryReportEntry("cluster", cluster.summary,
                                           details: (cluster.slotsRunElsewhereSummary.map { [$0] } ?? [])
                                               + cluster.takenOver.suffix(20).map {
                                                   "\($0.task) slot \(slot($0.slot)) from \($0.from) at \(instant($0.at)): \($0.action)"
                                               }))
            if let own = cluster.ownClaims, let summary = cluster.ownClaimsSummary {
                out.append(RecoveryReportEntry("own claims", summary,
                                               details: own.prefix(Self.ownClaimsListed).map { "\($0.task) slot \(slot($0.slot)): \($0.action)" }
                                                   + (own.count > Self.ownClaimsListed ? ["… and \(own.count - Self.ownClaimsListed) more (recovery.json has them all)"] : [])))
            }
        }
        out.append(RecoveryReportEntry("took", "\(String(format: "%.3f", durationSeconds)) s"))
        return out
    }
}
