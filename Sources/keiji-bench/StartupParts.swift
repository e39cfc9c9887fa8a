import Foundation
import KeijiCore
import KeijiJournal

/// Where a start after a long journal spends its time, step by step, measured on a copy of the journal (so
/// the measured start itself still finds the crashed journal untouched): the journal's recovery scan, the
/// checkpoint's snapshot, decoding and applying the records after it, and the query view's catch-up (a
/// rebuild, as for a new view, and a catch-up of a view that was current at the crash).
struct StartupParts: Codable, Sendable {
    var journalOpenSeconds = 0.0
    var snapshotSeconds = 0.0
    var snapshotBytes = 0
    var replaySeconds = 0.0
    var recordsReplayed = 0
    var viewRebuildSeconds = 0.0
    var viewCatchUpSeconds = 0.0

    static func measure(journal source: String, scratch: String, workspace: Workspace) throws -> StartupParts {
        let copy = scratch + "/journal"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: source) {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: copy + "/" + file)
        }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var parts = StartupParts()
        var clock = ContinuousClock.now
        func lap() -> Double {
            let now = ContinuousClock.now
            defer { clock = now }
            return (now - clock).seconds
        }
        var options = JournalOptions()
        options.durability = .none
        let journal = try Journal.open(directory: copy, options: options)
        parts.journalOpenSeconds = lap()
        parts.snapshotBytes = journal.latestCheckpoint?.snapshot.count ?? 0
        let loaded = try StateLoader.load(from: journal)
        parts.snapshotSeconds = loaded.snapshotSeconds
        parts.replaySeconds = loaded.seconds - loaded.snapshotSeconds
        parts.recordsReplayed = loaded.recordsReplayed

        let database = scratch + "/keiji.db"
        let (view, fresh) = try QueryView.openOrReset(.sqlite(path: database), workspace: workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        _ = lap()
        try view.catchUp(with: loaded, fresh: fresh)
        parts.viewRebuildSeconds = lap()
        // A view that was current a moment before the crash: the last 1,000 records are new to it.
        var earlier = loaded.state
        earlier.lastLSN = max(1, earlier.lastLSN - 1000)
        try view.apply(touched: [], state: earlier)
        let (reopened, _) = try QueryView.openOrReset(.sqlite(path: database), workspace: workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        _ = lap()
        try reopened.catchUp(with: loaded, fresh: false)
        parts.viewCatchUpSeconds = lap()
        return parts
    }

    var lines: String {
        let f = { (seconds: Double) in FigureFormat.fixed(seconds * 1000, 1) + " ms" }
        return "  parts (on a copy): journal open \(f(journalOpenSeconds)); checkpoint snapshot (\(FigureFormat.megabytes(snapshotBytes))) "
            + "\(f(snapshotSeconds)); decode + apply \(FigureFormat.count(recordsReplayed)) records \(f(replaySeconds)) "
            + "(\(FigureFormat.fixed(replaySeconds * 1e6 / Double(max(1, recordsReplayed)), 2)) µs each); "
            + "view rebuild \(f(viewRebuildSeconds)), view catch-up of the last 1,000 records \(f(viewCatchUpSeconds))\n"
    }
}
