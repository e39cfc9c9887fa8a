import ArgumentParser
import Foundation
import KeijiCore
import KeijiJournal

/// `keiji journal …`: look inside the journal without changing it (stats, dump, verify, export), or
/// compact it while the scheduler is stopped.
struct JournalCommand: AsyncParsableCommand {
    // Every command here names itself: without `commandName`, ArgumentParser derives it from the type with
    // `String(describing:)`, whose protocol-conformance lookups cost about 0.3 ms per command at each start.
    static let configuration = CommandConfiguration(
        commandName: "journal", abstract: "Inspect, verify, compact and export the journal.",
        subcommands: [Stats.self, Dump.self, Verify.self, Compact.self, Export.self])

    static func directory() throws -> JournalDirectory {
        let workspace = try Workspace.current()
        guard try FileSystem.existsOrThrows(workspace.journalDirectory) else { throw CLIError("no journal at \(workspace.journalDirectory); run `keiji init` first") }
        return JournalDirectory(path: workspace.journalDirectory)
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stats", abstract: "Segments, sizes, LSN range and compression.")
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let stats = try JournalCommand.directory().stats()
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                    Console.say(String(decoding: try encoder.encode(stats), as: UTF8.self))
                    return
                }
                Console.say("segments: \(stats.segments.count), \(stats.totalBytes) bytes (\(stats.preallocatedBytes) of them zeros written ahead), \(stats.records) records")
                Console.say("LSNs:     \(stats.firstLSN.map(String.init) ?? "-") … \(stats.lastLSN.map(String.init) ?? "-"), checkpoint at \(stats.checkpointLSN.map(String.init) ?? "none")")
                Console.say("ratio:    \(String(format: "%.2f", stats.compressionRatio))× (raw record bytes ÷ stored payload bytes)")
                for segment in stats.segments {
                    Console.say("  \(segment.name.fileName)  \(segment.bytes) B (\(segment.preallocatedBytes) B unused)  \(segment.records) records  LSN \(segment.firstLSN)…\(segment.lastLSN)\(segment.sealed ? "  sealed" : "")\(segment.damaged ? "  DAMAGED" : "")")
                }
            }
        }
    }

    struct Dump: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dump", abstract: "Print records as readable lines or JSON.")
        @Option(parsing: .unconditional, help: "First LSN.") var from: UInt64 = 1
        @Option(parsing: .unconditional, help: "Last LSN.") var to: UInt64 = .max
        @Option(parsing: .unconditional, help: "Only records about this task.") var task: String?
        @Flag(help: "Print each record's JSON line.") var json = false

        /// Usage errors (exit 64), before the journal is opened.
        func validate() throws {
            guard from <= to else { throw ValidationError("--from (\(from)) must not be greater than --to (\(to))") }
            do { _ = try task.map(TaskName.init) } catch { throw ValidationError("\(error)") }
        }

        func run() async throws {
            try await reportingErrors {
                let filter = try task.map(TaskName.init)
                try JournalCommand.directory().forEachRecord(from: from, through: to) { lsn, bytes in
                    let entry = try? JournalEntry.decode(bytes)
                    if let filter, let entry, entry.taskName != filter { return }
                    if json {
                        // Binary records as the JSON they stand for, one that does not decode as `journal export` writes
                        // it (`{"undecodable":"<hex>"}`: a plain-text line broke the JSON Lines), and every key sorted, as
                        // in every other --json: a binary record re-encoded came out in another key order at each call.
                        let record = try JSONSerialization.jsonObject(with: Data(JournalEntry.exportLine(of: bytes)))
                        let line = try JSONSerialization.data(withJSONObject: ["lsn": lsn, "record": record], options: [.sortedKeys, .withoutEscapingSlashes])
                        Console.say(String(decoding: line, as: UTF8.self))
                    } else if let entry {
                        Console.say("\(lsn)  \(ISO8601.string(fromMilliseconds: entry.at))  \(entry.typeName)  \(entry.taskName.map { "task=\($0)" } ?? "")")
                    } else {
                        Console.say("\(lsn)  (undecodable record, \(bytes.count) bytes)")
                    }
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "verify", abstract: "Check every CRC, LZ4 block, the segment chain and that the checkpoint's snapshot loads; exit 1 on damage.")

        func run() async throws {
            try await reportingErrors {
                let directory = try JournalCommand.directory()
                var report = try directory.verify()
                // Checksums cannot tell a snapshot this keiji cannot decode (a newer keiji's): only a decode can, and the
                // next start would set it aside or refuse to load.
                report.problems += try StateLoader.unreadableCheckpointFindings(in: directory)
                Console.say("checked \(report.segmentsChecked) segments, \(report.framesChecked) frames, \(report.recordsChecked) records")
                for problem in report.problems { Console.say(problem.description) }
                if report.hasCorruption { throw CLIError("the journal is damaged (see above)") }
                let notes = [report.problems.contains { $0.severity == .tornTail } ? "a torn, unacknowledged tail will be cut at the next start" : nil,
                             report.problems.contains { $0.severity == .warning } ? "a damaged or unreadable checkpoint will be set aside at the next start, losing nothing" : nil]
                    .compactMap { $0 }
                Console.say(notes.isEmpty ? "ok" : "ok (\(notes.joined(separator: "; ")))")
            }
        }
    }

    struct Compact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "compact", abstract: "Checkpoint now and delete covered segments (scheduler stopped).")

        func run() async throws {
            try await reportingErrors {
                let workspace = try Workspace.current()
                let journal: Journal
                do {
                    journal = try await JournalTurn.waiting(in: workspace) { try Journal.open(directory: workspace.journalDirectory) }
                } catch let error as JournalError where error.code == .locked {
                    throw CLIError("the scheduler holds the journal (it compacts by itself while running); stop it first to compact now")
                }
                Console.journalRepaired(journal.recovery.repairs)
                do {
                    let repairedAtOpen = journal.recovery.repairs.count
                    let state = try StateLoader.load(from: journal).state
                    // The load sets aside a checkpoint whose snapshot this keiji cannot read, after the open's repairs.
                    Console.journalRepaired(Array(journal.recovery.repairs.dropFirst(repairedAtOpen)))
                    try await journal.writeCheckpoint(try StateLoader.snapshot(state), at: journal.lastLSN)
                    let result = try await journal.compact()
                    try await journal.close()
                    Console.say("checkpoint at LSN \(journal.lastLSN); removed \(result.removed.count) segment(s), \(result.bytesFreed) bytes")
                } catch {
                    try? await journal.close()
                    throw error
                }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export", abstract: "Write a segment's records as an .lz4 file (read it with lz4 -d).")
        @Argument(help: "Segment file name (see `keiji journal stats`).") var segment: String
        @Argument(help: "Destination .lz4 file (must not exist).") var destination: String

        func run() async throws {
            try await reportingErrors {
                guard let name = SegmentName(fileName: segment) else { throw CLIError("\(segment) is not a segment name (seg-<lsn>-<id>.jnl)") }
                let summary = try JournalCommand.directory().exportSegment(name, to: destination) { JournalEntry.exportLine(of: $0) }
                Console.say("wrote \(summary.records) records to \(destination) (\(summary.bytes) bytes)\(summary.endedAtTornTail ? "; an unacknowledged torn tail was left out" : "")")
            }
        }
    }
}
