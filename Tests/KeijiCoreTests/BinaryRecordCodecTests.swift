import Foundation
import KeijiJournal
import Testing

@testable import KeijiCore

/// The binary form of the hot run records (``BinaryRecordCodec``) and the JSON form of everything else:
/// golden bytes pin version 1, a journal written by keiji before the binary form still replays to the state
/// that keiji computed, damage is refused record by record, and dump/export still print JSON.
///
/// `KEIJI_REGENERATE_FIXTURES=1 swift test --filter BinaryRecordCodec` rewrites Fixtures/records/binary-v1.hex
/// after an intended change of the binary form (which needs a new version byte, and docs/journal-format.md §10); that
/// run fails, so it never passes by comparing the encoder with what it just wrote.
struct BinaryRecordCodecTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    /// One record of each binary type, with every optional field present and absent.
    static let goldenEntries: [JournalEntry] = [
        JournalEntry(at: 1_795_000_000_123, .runStarted(RunStart(runID: "0a1b2c3d4e5f", task: name("backup-db"), slot: 1_795_000_000,
                                                                 attempt: 2, trigger: .retry, interruptions: 1))),
        JournalEntry(at: 1_795_000_000_456, .runStarted(RunStart(runID: "r", task: name("a"), slot: nil, attempt: 1, trigger: .manual))),
        JournalEntry(at: 1_795_000_001_000, .runFinished(RunEnd(runID: "0a1b2c3d4e5f", task: name("backup-db"), outcome: .failed, exitCode: 3,
                                                                signal: nil, durationMs: 1234, latenessMs: 5, final: true,
                                                                message: "exit status 3"))),
        JournalEntry(at: 1_795_000_002_000, .runFinished(RunEnd(runID: "r", task: name("a"), outcome: .timedOut, exitCode: nil, signal: 9,
                                                                durationMs: 60_000, latenessMs: nil, final: false,
                                                                message: "quote \" newline \n é 🦀"))),
        JournalEntry(at: 1_795_000_003_000, .runFinished(RunEnd(runID: "s", task: name("a"), outcome: .succeeded, exitCode: 0, signal: nil,
                                                                durationMs: 3, latenessMs: -2, final: true, message: nil))),
        JournalEntry(at: 1_795_000_004_000, .runMissed(RunMissed(task: name("backup-db"), slot: 1_795_000_900, count: 4, reason: .downtime))),
        JournalEntry(at: 1_795_000_005_000, .taskSaved(commandTask("alpha"), taskID: "6f1c0c9e-3d1f-4d8e-9a51-2b7f0e9c4a10")),
        JournalEntry(at: 1_795_000_006_000, .taskSaved(everyOptionalField, taskID: "id-nightly")),
    ]

    /// A definition with every optional field of the binary form present and the non-default booleans.
    static let everyOptionalField: TaskDefinition = {
        var policy = RunPolicy()
        policy.timeoutSeconds = 0.25
        policy.graceSeconds = 2.5
        policy.overlap = .allow
        policy.retries = 3
        policy.retryBackoffSeconds = 1.5
        policy.catchUp = .all
        policy.catchUpLimit = 7
        policy.rerunInterrupted = false
        policy.continueOnError = true
        return TaskDefinition(name: name("nightly"), description: "quote \" newline \n é 🦀", action: .binary(path: "/home/u/.keiji/bin/nightly"),
                              schedule: ScheduleSpec(.cron(try! CronExpression("*/5 9-17 * * mon-fri")), timeZone: "Europe/Paris", jitterSeconds: 30),
                              policy: policy, directory: "/home/u/keiji/tasks/nightly")
    }()

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(hex: Substring) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    @Test func theEncoderStillProducesTheCommittedVersion1Bytes() throws {
        let path = Self.fixtures + "/records/binary-v1.hex"
        let produced = try Self.goldenEntries.map { try $0.encoded() }
        if ProcessInfo.processInfo.environment["KEIJI_REGENERATE_FIXTURES"] == "1" {
            try (produced.map(Self.hex).joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            Issue.record("fixtures regenerated: review the diff, then run the tests again without KEIJI_REGENERATE_FIXTURES")  // compared with itself below, it would pass
        }
        let committed = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(Self.bytes(hex:))
        #expect(committed.count == Self.goldenEntries.count)
        for (index, entry) in Self.goldenEntries.enumerated() where index < committed.count {
            #expect(produced[index] == committed[index], "\(entry.typeName) #\(index): the binary record format changed")
            #expect(try JournalEntry.decode(committed[index]) == entry, "committed bytes #\(index) decode to the entry")
        }
    }

    @Test func hotRecordsAreStoredBinaryAndTheRestAsJSON() throws {
        for entry in sampleHistory() {
            let stored = try entry.encoded()
            switch entry.event {
            case .runStarted, .runFinished, .runMissed, .taskSaved:
                #expect(stored.first == BinaryRecordCodec.version1, "\(entry.typeName) is binary")
                #expect(stored.count * 2 < (try entry.jsonLine()).count, "\(entry.typeName) is under half its JSON")
            default:
                #expect(stored.first == UInt8(ascii: "{"), "\(entry.typeName) stays JSON")
            }
            #expect(try JournalEntry.decode(stored) == entry)
        }
    }

    @Test func extremeValuesRoundTrip() throws {
        let entries = [
            JournalEntry(at: .min, .runStarted(RunStart(runID: "", task: name("a"), slot: .max, attempt: .min, trigger: .catchUp, interruptions: .max))),
            JournalEntry(at: .max, .runFinished(RunEnd(runID: String(repeating: "x", count: 300), task: name(String(repeating: "n", count: 64)),
                                                       outcome: .spawnFailed, exitCode: .min, signal: .max, durationMs: .min,
                                                       latenessMs: .max, final: false, message: ""))),
            JournalEntry(at: -1, .runMissed(RunMissed(task: name("a"), slot: .min, count: .max, reason: .error))),
        ]
        for entry in entries { #expect(try JournalEntry.decode(try entry.encoded()) == entry, "\(entry.typeName)") }
    }

    /// A binary record that is cut short, has bytes left over, or carries an unknown version, type, code or flag
    /// never decodes to something else: it throws, and replay refuses it.
    @Test func damagedBinaryRecordsThrow() throws {
        for entry in Self.goldenEntries {
            let bytes = try entry.encoded()
            for length in 0..<bytes.count where length != 0 {
                #expect(throws: (any Error).self, "\(entry.typeName) cut to \(length) bytes") { try JournalEntry.decode(Array(bytes.prefix(length))) }
            }
            #expect(throws: (any Error).self) { try JournalEntry.decode(bytes + [0]) }
            var flags = bytes
            flags[2] |= 0x80
            #expect(throws: (any Error).self) { try JournalEntry.decode(flags) }
        }
        var newer = try Self.goldenEntries[0].encoded()
        newer[0] = 2
        let newerError = try #require(Self.error { _ = try JournalEntry.decode(newer) })
        #expect(RefusedRecord.reason(newerError).contains("unknown record format version 2"))
        var type = try Self.goldenEntries[0].encoded()
        type[1] = 9
        #expect(throws: (any Error).self) { try JournalEntry.decode(type) }
        // A task name today's rules refuse, written into a binary record by hand.
        var writer = BinaryRecordCodec.Writer()
        writer.header(.runMissed, flags: 0, at: 1)
        writer.string("../x")
        writer.signed(1)
        writer.signed(1)
        writer.byte(2)
        #expect(throws: (any Error).self) { try JournalEntry.decode(writer.bytes) }
    }

    /// Strings are taken as they are when ASCII and validated otherwise: text in other scripts decodes to itself,
    /// and bytes that are not UTF-8 (a lone continuation byte, a cut sequence, an overlong form) are refused.
    @Test func stringsDecodeAsTheirTextAndBytesThatAreNotUTF8AreRefused() throws {
        for message in ["plain", "", "é", "quote \" 日本語 🦀", String(repeating: "x", count: 200) + "é"] {
            let entry = JournalEntry(at: 1, .runFinished(RunEnd(runID: "r", task: name("a"), outcome: .failed, exitCode: 1, signal: nil,
                                                                durationMs: 1, latenessMs: nil, final: true, message: message)))
            #expect(try JournalEntry.decode(try entry.encoded()) == entry, "\(message)")
        }
        for bad: [UInt8] in [[0x80], [0x61, 0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0x61, 0xFF, 0x62]] {
            var writer = BinaryRecordCodec.Writer()
            writer.header(.runMissed, flags: 0, at: 1)
            writer.unsigned(UInt64(bad.count))
            writer.bytes += bad  // the task name's bytes
            writer.signed(1)
            writer.signed(1)
            writer.byte(2)
            let error = try #require(Self.error { _ = try JournalEntry.decode(writer.bytes) }, "\(bad)")
            #expect(RefusedRecord.reason(error).contains("is not UTF-8"), "\(bad): \(RefusedRecord.reason(error))")
        }
    }

    static func error(_ body: () throws -> Void) -> (any Error)? {
        do { try body() } catch { return error }
        return nil
    }

    /// Replay refuses a binary record that does not decode like a JSON one: the task it names (read from the
    /// record's front) is put in error, and the report names the record's type.
    @Test func replayRefusesAnUndecodableBinaryRecordAndNamesItsTask() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: options)
        _ = try await journal.append(try JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("alpha"), taskID: "id-alpha")).encoded())
        var bad = try JournalEntry(at: 1_795_000_001_000, .runStarted(RunStart(runID: "r1", task: name("alpha"), slot: 1_795_000_001,
                                                                                   attempt: 1, trigger: .schedule))).encoded()
        bad[bad.count - 1] = 77  // the trigger code
        let badLSN = try await journal.append(bad)
        let loaded = try StateLoader.load(from: journal)
        let refused = try #require(loaded.refused.first)
        #expect(loaded.refused.count == 1 && refused.lsn == badLSN && refused.type == "run.started" && refused.task == name("alpha"))
        #expect(refused.reason.contains("unknown trigger code 77"), "\(refused.reason)")
        #expect(loaded.state.tasks[name("alpha")]?.isError == true && loaded.state.activeRuns.isEmpty)
        try await journal.close()
    }

    /// A binary `task.saved` whose definition does not decode (here an unknown schedule code) is refused by
    /// replay like any record, and the task it names, read from the record's front, is put in error.
    @Test func replayRefusesAnUndecodableSavedDefinitionAndNamesItsTask() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: options)
        _ = try await journal.append(try JournalEntry(at: 1_795_000_000_000, .taskSaved(commandTask("good"), taskID: "id-good")).encoded())
        var writer = BinaryRecordCodec.Writer()
        writer.header(.taskSaved, flags: 0, at: 1_795_000_001_000)
        writer.string("id-odd")
        DefinitionCodec.write(commandTask("odd"), to: &writer)
        var bad = writer.bytes
        let command: [UInt8] = [4] + Array("true".utf8)  // the command, length-prefixed; the schedule's code follows it
        let at = try #require((0...(bad.count - command.count)).first { Array(bad[$0..<$0 + command.count]) == command })
        #expect(bad[at + command.count] == 1, "the code of an --every schedule")
        bad[at + command.count] = 9
        let badLSN = try await journal.append(bad)
        let loaded = try StateLoader.load(from: journal)
        let refused = try #require(loaded.refused.first)
        #expect(loaded.refused.count == 1 && refused.lsn == badLSN && refused.type == "task.saved" && refused.task == name("odd"))
        #expect(refused.reason.contains("unknown schedule code 9"), "\(refused.reason)")
        #expect(loaded.state.tasks[name("good")]?.isError == false)
        try await journal.close()
    }

    /// A journal written by keiji before the binary form (real binaries, Fixtures/journal-json-era/journal: tasks
    /// created offline, a scheduler stopped cleanly with a checkpoint, another killed with a run in progress, a
    /// command written offline) replays to exactly the state that keiji computed then: `expected/` holds the
    /// checkpoint its `keiji journal compact` wrote at the last LSN.
    @Test func aJournalFromBeforeTheBinaryFormReplaysToTheStateKeijiComputedThen() async throws {
        let root = Self.fixtures + "/journal-json-era"
        let copy = TemporaryHome()
        defer { copy.remove() }
        try FileManager.default.createDirectory(atPath: copy.path + "/journal", withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: root + "/journal") {
            try FileManager.default.copyItem(atPath: root + "/journal/" + file, toPath: copy.path + "/journal/" + file)
        }
        let expectedSnapshot = try #require(try JournalDirectory(path: root + "/expected").latestCheckpoint())
        let expected = try StateLoader.decodeSnapshot(expectedSnapshot.snapshot)
        var options = JournalOptions()
        options.segmentMaxAge = nil
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: copy.path + "/journal", options: options)
        let loaded = try StateLoader.load(from: journal)
        #expect(loaded.recordsReplayed == 11 && loaded.refused.isEmpty)
        // That keiji kept no measured duration of a run (``RunSummary/measuredMs``): the replay's are its records' own.
        #expect(SnapshotCodecTests.withoutMeasuredDurations(loaded.state) == expected, "replay of the JSON-era journal equals the state keiji computed then")
        #expect(loaded.state.tasks[name("ping")]?.isDisabled == true && loaded.state.activeRuns.count == 1)
        // Every record decodes, and its stored bytes are JSON (the journal predates the binary form).
        try journal.contents.forEachRecord { lsn, bytes in
            #expect(!BinaryRecordCodec.isBinary(bytes), "LSN \(lsn)")
            _ = try JournalEntry.decode(bytes)
        }
        try await journal.close()
    }

    /// `keiji journal export` writes every record as a JSON line, binary ones included.
    @Test func exportWritesBinaryRecordsAsJSONLines() async throws {
        let home = TemporaryHome()
        defer { home.remove() }
        var options = JournalOptions()
        options.idleNoteDelay = nil
        let journal = try Journal.open(directory: home.workspace.journalDirectory, options: options)
        let entries = sampleHistory()
        _ = try await journal.append(contentsOf: try entries.map { try $0.encoded() })
        try await journal.close()
        let contents = JournalDirectory(path: home.workspace.journalDirectory)
        let destination = home.path + "/export.lz4"
        let summary = try contents.exportSegment(try #require(try contents.segments().first), to: destination) { JournalEntry.exportLine(of: $0) }
        #expect(summary.records == entries.count)
        let text = try LZ4FrameFile.decompress(Array(try Data(contentsOf: URL(fileURLWithPath: destination))))
        let lines = text.split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == entries.count)
        for (line, entry) in zip(lines, entries) {
            #expect(line.first == UInt8(ascii: "{"), "\(entry.typeName) exported as JSON")
            #expect(try JournalEntry.decode(Array(line)) == entry)
        }
        var newer = try Self.goldenEntries[0].encoded()
        newer[0] = 2
        let undecodable = newer.withUnsafeBytes { JournalEntry.exportLine(of: $0) }
        #expect(String(decoding: undecodable, as: UTF8.self) == #"{"undecodable":"\#(Self.hex(newer))"}"#)
    }
}
