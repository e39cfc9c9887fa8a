/// The human-readable form of a ``JournalReport``.
extension JournalReport {
    func table() -> String {
        typealias F = FigureFormat
        var out: [String] = []
        let m = machine
        out.append("keiji-bench journal   \(m.date)")
        out.append("machine    \(m.onlineCPUs) online CPUs\(m.cpuModel.map { " (\($0))" } ?? ""), Linux \(m.kernel)"
            + (m.loadAverage.map { ", load average \($0) at start" } ?? ""))
        out.append("storage    \(m.filesystem) on \(m.device) mounted at \(m.mountPoint); files in \(m.directory)")
        out.append("records    \(F.count(records.count)) distinct scheduler-like JSON records, mean \(F.fixed(records.meanBytes, 0)) B "
            + "(\(records.minBytes)–\(records.maxBytes) B): 80% run.started, 15% run.finished, 5% command")
        out.append("timing     \(F.fixed(secondsPerPhase, 1)) s per timed phase, CLOCK_MONOTONIC; latency per call, nearest-rank percentiles")
        out.append("")

        out.append("Appends (ceiling = producers × raw fdatasync rate: one sync per batch, one record per waiting producer)")
        var appends = TextTable(
            ["phase", "records/s", "p50", "p99", "ceiling/s", "of ceiling", "rec/frame", "target", ""],
            alignments: [.left, .right, .right, .right, .right, .right, .right, .left, .left])
        for phase in phases {
            let target = targets.first { $0.name == phase.name }
            appends.add([
                phase.label,
                F.count(phase.recordsPerSecond),
                phase.latency.map { F.latency(microseconds: $0.p50Microseconds) } ?? "—",
                phase.latency.map { F.latency(microseconds: $0.p99Microseconds) } ?? "—",
                phase.ceilingRecordsPerSecond.map { F.count($0) } ?? "",
                phase.ceilingRecordsPerSecond.map { F.ratio(phase.recordsPerSecond / $0) } ?? "",
                phase.recordsPerFrame.map { F.fixed($0, 1) } ?? "",
                target.map { targetText($0) } ?? "",
                target?.verdict ?? "",
            ])
        }
        out.append(appends.render())
        out.append("  (each raw row is the limit, measured in half-second turns with the journal row under it: "
            + "producers × its rate is that row's ceiling)")
        let fills = phases.compactMap { phase -> String? in
            guard let producers = phase.producers, producers > 1, let perFrame = phase.recordsPerFrame else { return nil }
            return "\(F.fixed(100 * perFrame / Double(producers), 0))% of \(producers)"
        }
        if !fills.isEmpty {
            out.append("  (mean records per frame as a share of the producers: " + fills.joined(separator: ", ")
                + "; the ceiling assumes every producer's record in every frame)")
        }
        if let growing = phases.first(where: { $0.name == "raw-growing" }),
           let preallocated = phases.first(where: { $0.name == "raw-preallocated" }), growing.recordsPerSecond > 0 {
            out.append("  (preallocated ÷ growing file: \(F.ratio(preallocated.recordsPerSecond / growing.recordsPerSecond)) syncs/s: a sync "
                + "that has no new file size to commit, as in the journal's preallocated segments; the sync rows divide by the preallocated loop)")
        }
        if let bound = sync64Bound() {
            out.append("  (64 producers, each waiting for its own record: a batch cannot come faster than one sync plus one round of the 64 "
                + "producers' next appends, \(F.fixed(bound.syncMicroseconds, 0)) µs (the raw row) + \(F.fixed(bound.roundMicroseconds, 0)) µs "
                + "(journal none, 64 producers), so this machine and this append path allow at most \(F.ratio(bound.ratio)) of the ceiling)")
        }
        out.append("")

        let r = replay
        out.append("Replay of \(F.count(r.records)) records (\(F.megabytes(r.rawRecordBytes)) raw, \(F.megabytes(r.storedBytes)) on disk "
            + "in \(r.segments) segment\(r.segments == 1 ? "" : "s"); written in none mode, batches of 1,000, in \(F.seconds(r.writeSeconds)))")
        var replayTable = TextTable(["measure", "time", "records/s", "MB/s", "target", ""],
                                    alignments: [.left, .right, .right, .right, .left, .left])
        let replayTarget = targets.first { $0.name == "replay" }
        replayTable.add([
            "JournalDirectory.forEachRecord", F.seconds(r.replaySeconds), F.count(r.replayRecordsPerSecond),
            F.fixed(r.replayMegabytesPerSecond, 0), replayTarget.map { targetText($0) } ?? "", replayTarget?.verdict ?? "",
        ])
        replayTable.add([
            "Journal.open (recovery scan)", F.seconds(r.openSeconds), F.count(Double(r.openRecordsScanned) / r.openSeconds),
            "", "", "",
        ])
        out.append(replayTable.render())
        out.append("  (both read files just written, so from the page cache: this is the journal's CPU cost, not the disk's)")
        out.append("")

        out.append("Compression (raw record bytes ÷ stored payload bytes, LZ4 per frame)")
        var compression = TextTable(["journal", "ratio", "target", ""], alignments: [.left, .right, .left, .left])
        for check in targets where check.unit == "×" {
            compression.add([compressionLabel(check.name), F.ratio(check.measured), targetText(check), check.verdict])
        }
        out.append(compression.render())
        out.append("")

        let missed = targets.filter { !$0.pass }
        out.append("Targets: \(targets.count - missed.count) of \(targets.count) met"
            + (missed.isEmpty ? "." : "; missed: " + missed.map(\.name).joined(separator: ", ") + "."))
        return out.joined(separator: "\n")
    }

    /// The best the sync phase with 64 producers can reach of its ceiling when nothing overlaps a sync: a
    /// producer's next append waits for its last one's sync, so a batch of 64 needs a sync and a whole round of
    /// appends, which the `none-64` phase times without syncs.
    func sync64Bound() -> (syncMicroseconds: Double, roundMicroseconds: Double, ratio: Double)? {
        guard let raw = phases.first(where: { $0.name == "raw-64" }), let none = phases.first(where: { $0.name == "none-64" }),
            raw.recordsPerSecond > 0, none.recordsPerSecond > 0
        else { return nil }
        let sync = 1e6 / raw.recordsPerSecond
        let round = 64e6 / none.recordsPerSecond
        return (sync, round, sync / (sync + round))
    }

    private func targetText(_ check: TargetCheck) -> String {
        switch check.unit {
        case "× raw": "≥ \(FigureFormat.fixed(check.atLeast, 2))× raw (\(FigureFormat.ratio(check.measured)))"
        case "× (64 × raw)": "≥ \(FigureFormat.fixed(check.atLeast, 2))× of 64 × raw (\(FigureFormat.ratio(check.measured)))"
        case "×": "≥ \(FigureFormat.fixed(check.atLeast, 1))×"
        default: "≥ \(FigureFormat.count(check.atLeast)) \(check.unit)"
        }
    }

    private func compressionLabel(_ name: String) -> String {
        switch name {
        case "compression-sync-64": "after journal sync, 64 producers"
        case "compression-replay": "after replay data (none, batches of 1,000)"
        default: name
        }
    }
}
