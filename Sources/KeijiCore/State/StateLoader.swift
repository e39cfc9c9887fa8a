import Foundation
import KeijiJournal

/// Rebuilds ``SchedulerState`` from a journal: the newest checkpoint's snapshot, then every record after it
/// through ``Reducer``. The same path serves the scheduler at start and the CLI when it appends offline.
public enum StateLoader {
    public struct Loaded: Sendable {
        public var state: SchedulerState
        public var recordsReplayed: Int
        public var seconds: Double
        /// LSNs and names of the tasks each replayed record touched, for bringing the query view up to date.
        public var touched: [(lsn: UInt64, task: TaskName?, isCommand: Bool)]
    }

    public static func load(from journal: Journal) throws -> Loaded {
        let started = DispatchTime.now().uptimeNanoseconds
        var state = SchedulerState()
        if let checkpoint = journal.latestCheckpoint {
            state = try snapshotDecoder.decode(SchedulerState.self, from: Data(checkpoint.snapshot))
            state.numberUnnumberedTasks()
        }
        var replayed = 0
        var touched: [(lsn: UInt64, task: TaskName?, isCommand: Bool)] = []
        try journal.contents.forEachRecord(from: state.lastLSN + 1) { lsn, bytes in
            let entry = try JournalEntry.decode(bytes)
            Reducer.apply(entry, lsn: lsn, to: &state)
            touched.append((lsn, entry.taskName, entry.isCommand))
            replayed += 1
        }
        state.lastLSN = max(state.lastLSN, journal.lastLSN)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return Loaded(state: state, recordsReplayed: replayed, seconds: seconds, touched: touched)
    }

    public static func snapshot(_ state: SchedulerState) throws -> [UInt8] {
        Array(try snapshotEncoder.encode(state))
    }

    static let snapshotEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    static let snapshotDecoder = JSONDecoder()
}

extension QueryView {
    /// Brings the view up to `loaded.state`: a rebuild when the view is new, otherwise the rows of tasks
    /// touched by records after the view's `applied_lsn`. Returns how many commands that re-applied.
    @discardableResult
    public func catchUp(with loaded: StateLoader.Loaded, fresh: Bool) throws -> Int {
        if fresh {
            try rebuild(from: loaded.state)
            return loaded.touched.filter(\.isCommand).count
        }
        let applied = try appliedLSN()
        if applied > loaded.state.lastLSN {
            // The view claims more than the journal has (restored from elsewhere): rebuild rather than trust it.
            try rebuild(from: loaded.state)
            return 0
        }
        let pending = loaded.touched.filter { $0.lsn > applied }
        if pending.isEmpty && applied == loaded.state.lastLSN { return 0 }
        if applied < (loaded.touched.first?.lsn ?? loaded.state.lastLSN + 1) - 1 {
            // Older than the replay window (the checkpoint covers it): rewrite every row.
            try rebuild(from: loaded.state)
        } else {
            try apply(touched: Set(pending.compactMap(\.task)), state: loaded.state)
        }
        return pending.filter(\.isCommand).count
    }
}
