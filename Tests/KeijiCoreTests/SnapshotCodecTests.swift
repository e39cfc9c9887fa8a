import Foundation
import Testing

@testable import KeijiCore

/// Checkpoint snapshots: the remembered runs and runs in progress in a binary section after the JSON of the
/// rest (``SnapshotCodec``). Golden bytes pin version 1; the all-JSON snapshots of older checkpoints still
/// decode (also `BinaryRecordCodecTests`' JSON-era journal, whose checkpoints are JSON).
///
/// `KEIJI_REGENERATE_FIXTURES=1 swift test --filter SnapshotCodec` rewrites Fixtures/records/snapshot-v1.hex.
struct SnapshotCodecTests {
    /// The sample history with a run still in progress and runs of every shape.
    static func state() -> SchedulerState {
        var entries = sampleHistory()
        entries.append(JournalEntry(at: 1_795_200_000_000, .runStarted(RunStart(runID: "open", task: name("alpha"), slot: 1_795_200_000,
                                                                               attempt: 2, trigger: .retry, interruptions: 1))))
        var state = SchedulerState()
        for (index, entry) in entries.enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        return state
    }

    @Test func theEncoderStillProducesTheCommittedVersion1Bytes() throws {
        let path = BinaryRecordCodecTests.fixtures + "/records/snapshot-v1.hex"
        let produced = try StateLoader.snapshot(Self.state())
        if ProcessInfo.processInfo.environment["KEIJI_REGENERATE_FIXTURES"] == "1" {
            try (BinaryRecordCodecTests.hex(produced) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        let committed = BinaryRecordCodecTests.bytes(hex: try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")[0])
        #expect(produced == committed, "the snapshot format changed")
        #expect(committed.first == SnapshotCodec.version1)
        #expect(try StateLoader.decodeSnapshot(committed) == Self.state())
    }

    @Test func aSnapshotRoundTripsAndTheJSONFormStillDecodes() throws {
        let state = Self.state()
        #expect(!state.activeRuns.isEmpty && state.tasks.values.contains { !$0.recentRuns.isEmpty })
        #expect(try StateLoader.decodeSnapshot(try StateLoader.snapshot(state)) == state)
        #expect(try StateLoader.decodeSnapshot(Array(try StateLoader.snapshotEncoder.encode(state))) == state, "all-JSON form")
        #expect(try StateLoader.decodeSnapshot(try StateLoader.snapshot(SchedulerState())) == SchedulerState())
    }

    /// A damaged snapshot throws (the journal's CRC makes this rare; the checkpoint is then not used).
    @Test func aDamagedSnapshotThrows() throws {
        let bytes = try StateLoader.snapshot(Self.state())
        for length in stride(from: 1, to: bytes.count, by: 7) {
            #expect(throws: (any Error).self, "cut to \(length) bytes") { _ = try StateLoader.decodeSnapshot(Array(bytes.prefix(length))) }
        }
        #expect(throws: (any Error).self) { _ = try StateLoader.decodeSnapshot(bytes + [0]) }
        var newer = bytes
        newer[0] = 2
        #expect(throws: (any Error).self) { _ = try StateLoader.decodeSnapshot(newer) }
    }
}
