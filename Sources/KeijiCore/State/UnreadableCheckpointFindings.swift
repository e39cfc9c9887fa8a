import KeijiJournal

extension StateLoader {
    /// `keiji journal verify`'s findings about checkpoints whose checksum is right but whose snapshot this keiji cannot
    /// read (the journal checks checksums only), each with what the next start will do, as the load would decide it
    /// (``JournalDirectory/checkpointLoadPlan(from:bridged:_:)``): set it aside and fall back, losing nothing (a
    /// warning), or refuse to load (corruption). Reads only: it renames nothing.
    public static func unreadableCheckpointFindings(in directory: JournalDirectory) throws -> [VerifyReport.Problem] {
        let plan = try directory.checkpointLoadPlan(from: try directory.latestCheckpoint(), readSnapshot)
        let outcome: String
        if plan.refusal != nil {
            outcome = "no older checkpoint this keiji reads has every record after it, so the next start refuses to load the journal and changes nothing"
        } else if let loaded = plan.loaded, let file = plan.loadedFile {
            outcome = "the next start sets it aside (.broken) and falls back to \(file), replaying the records after LSN \(loaded.checkpoint.lsn), losing nothing"
        } else {
            outcome = "the next start sets it aside (.broken) and replays the segments from their start, losing nothing"
        }
        return plan.refused.map {
            VerifyReport.Problem(file: $0.file, offset: 0, severity: plan.refusal == nil ? .warning : .corruption,
                                 detail: "checksum valid, but \($0.reason); \(outcome)")
        }
    }
}
