import Foundation

/// A repair an earlier ``Journal/open(directory:options:)`` made that no recovery report has shown yet. The
/// scheduler's report is the one place an operator reads about repairs, but a CLI command, `keiji journal compact`
/// or a strict start that then refused open the journal too, and their repairs were otherwise never reported.
public struct UnreportedRepair: Sendable, Codable, Equatable, CustomStringConvertible {
    public var repair: Repair
    /// When that open ran, Unix nanoseconds.
    public var openedAtNanoseconds: UInt64
    public var mode: JournalOptions.RecoveryMode
    /// The program that opened the journal (`keiji`, `keiji-scheduler`…).
    public var process: String
    /// The open refused (in `strict` mode) after making this repair.
    public var openRefused: Bool

    public init(repair: Repair, openedAtNanoseconds: UInt64, mode: JournalOptions.RecoveryMode, process: String, openRefused: Bool) {
        (self.repair, self.openedAtNanoseconds, self.mode, self.process, self.openRefused) =
            (repair, openedAtNanoseconds, mode, process, openRefused)
    }

    public var description: String {
        let at = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(openedAtNanoseconds) / 1e9))
        return "done by an earlier open (\(process), \(mode.rawValue) mode, \(at)\(openRefused ? ", which then refused" : "")): \(repair)"
    }
}

/// `unreported-repairs.json` in the journal directory: the repairs opens made since the last recovery report,
/// kept (0600, written atomically and synced) until a scheduler journals a report that lists them.
enum UnreportedRepairsFile {
    static let fileName = "unreported-repairs.json"

    /// The repairs recorded so far. A file that does not decode is itself reported, never dropped silently.
    static func read(io: any JournalIO, directory: String) throws -> [UnreportedRepair] {
        guard try io.listDirectory(directory).contains(fileName) else { return [] }
        let bytes = try io.readAll(directory + "/" + fileName)
        if let repairs = try? JSONDecoder().decode([UnreportedRepair].self, from: Data(bytes)) { return repairs }
        return [UnreportedRepair(
            repair: Repair(kind: .temporaryFileRemoved, file: fileName, bytes: 0,
                           detail: "the record of earlier repairs (\(bytes.count) bytes) does not decode; those repairs are unknown"),
            openedAtNanoseconds: 0, mode: .strict, process: "unknown", openRefused: false)]
    }

    /// Adds `repairs` after `earlier`, durably.
    static func write(_ repairs: [UnreportedRepair], after earlier: [UnreportedRepair], io: any JournalIO, directory: String) throws {
        guard !repairs.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try io.writeAtomically(Array(try encoder.encode(earlier + repairs)), to: directory + "/" + fileName, directory: directory)
    }

    /// Forgets every recorded repair, once a report has listed them.
    static func clear(io: any JournalIO, directory: String) throws {
        guard try io.listDirectory(directory).contains(fileName) else { return }
        try io.remove(directory + "/" + fileName)
        try io.syncDirectory(directory)
    }
}
