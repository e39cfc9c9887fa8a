import Foundation
import Testing

@testable import KeijiJournal

/// A real writer process is killed with SIGKILL at random moments, over and over, on the real file system.
/// After each kill every acknowledged record must be there, byte for byte, and nothing else may appear.
///
/// CI runs 50 kills; `KEIJI_KILL_ITERATIONS=10000 swift test --filter KillLoop` runs more.
struct KillLoopTests {
    static var iterations: Int { ProcessInfo.processInfo.environment["KEIJI_KILL_ITERATIONS"].flatMap(Int.init) ?? 50 }

    struct Ack: Hashable {
        var lsn: UInt64, iteration: Int, producer: Int, sequence: Int
    }

    @Test func killNineLoopLosesNothingAcknowledged() async throws {
        let directory = TemporaryDirectory("kill")
        defer { directory.remove() }
        let journalPath = directory.path + "/journal"
        let writer = try #require(productBinary("keiji-journal-writer"), "keiji-journal-writer is built with the tests")
        var rng = SeededGenerator(seed: UInt64(ProcessInfo.processInfo.environment["KEIJI_KILL_SEED"].flatMap(Int.init) ?? 20261123))
        var acknowledged: [UInt64: Ack] = [:]
        var totalAcks = 0
        var repairsSeen = 0

        for iteration in 0..<Self.iterations {
            let ackPath = directory.path + "/acks-\(iteration)"
            let producers = [1, 1, 4, 16][Int.random(in: 0..<4, using: &rng)]
            let mode = ["sync", "sync", "interval", "none"][Int.random(in: 0..<4, using: &rng)]
            let process = Process()
            process.executableURL = URL(fileURLWithPath: writer)
            process.arguments = [journalPath, ackPath, "\(iteration)", "\(producers)", mode, "\(4096 + 32768)"]
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...150, using: &rng)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            #expect(process.terminationReason == .uncaughtSignal, "iteration \(iteration): the writer exited by itself: \(stderr)")

            let acks = try parseAcks(at: ackPath)
            totalAcks += acks.count
            for ack in acks { acknowledged[ack.lsn] = ack }

            // Odd iterations read the files as the kill left them; even ones recover them first.
            let contents: JournalDirectory
            var journal: Journal?
            if iteration % 2 == 0 {
                let opened = try Journal.open(directory: journalPath, options: JournalOptions())
                repairsSeen += opened.recovery.repairs.count
                journal = opened
                contents = opened.contents
            } else {
                contents = JournalDirectory(path: journalPath)
            }
            let firstAvailable = try contents.segments().first?.baseLSN ?? 1
            var seen: [UInt64: Ack] = [:]
            try contents.forEachRecord { lsn, bytes in seen[lsn] = try decodeRecord(bytes, lsn: lsn) }
            for (lsn, ack) in acknowledged where lsn >= firstAvailable {
                #expect(seen[lsn] == ack, "iteration \(iteration): acknowledged LSN \(lsn) is \(seen[lsn].map { "\($0)" } ?? "missing")")
            }
            let lsns = seen.keys.sorted()
            if let first = lsns.first, let last = lsns.last {
                #expect(UInt64(lsns.count) == last - first + 1, "iteration \(iteration): no holes")
            }
            acknowledged = acknowledged.filter { $0.key >= firstAvailable }
            try await journal?.close()
        }
        print("kill -9 loop: \(Self.iterations) kills, \(totalAcks) acknowledged appends checked, \(repairsSeen) repairs by recovery")
        #expect(totalAcks > Self.iterations, "the writer must make progress between kills")
    }

    func parseAcks(at path: String) throws -> [Ack] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // The kill can land in the middle of writing an ack: a last line without its newline was never fully
        // reported, so it is not counted (its record was durable; the parent just cannot rely on it).
        lines.removeLast()
        return try lines.map { line in
            let fields = line.split(separator: " ").compactMap { Int($0) }
            guard fields.count == 4 else { throw TestFailure("torn ack line: \(line)") }
            return Ack(lsn: UInt64(fields[0]), iteration: fields[1], producer: fields[2], sequence: fields[3])
        }
    }

    /// Parses "i<iteration>p<producer>s<sequence>:" and checks the filler the writer derives from it: byte `i`
    /// is `A` + (i + sequence) mod 26, so the filler is a stretch of ``alphabet`` compared with ``sameBytes(_:_:)`` (built a
    /// byte at a time, the expected filler was most of this test's CPU in a debug build, for every record read
    /// back after every kill).
    func decodeRecord(_ bytes: UnsafeRawBufferPointer, lsn: UInt64) throws -> Ack {
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { throw TestFailure("LSN \(lsn): not a writer record") }
        let numbers = String(decoding: bytes[..<colon], as: UTF8.self).split(whereSeparator: { "ips".contains($0) }).compactMap { Int($0) }
        guard numbers.count == 3 else { throw TestFailure("LSN \(lsn): bad prefix") }
        let (iteration, producer, sequence) = (numbers[0], numbers[1], numbers[2])
        let length = (sequence * 7919 + producer * 104_729) % 600
        let filler = UnsafeRawBufferPointer(rebasing: bytes[(colon + 1)...])
        let first = sequence % 26
        guard Self.alphabet.withUnsafeBytes({ sameBytes(filler, UnsafeRawBufferPointer(rebasing: $0[first..<(first + length)])) }) else {
            throw TestFailure("LSN \(lsn): bytes were never written by the writer")
        }
        return Ack(lsn: lsn, iteration: iteration, producer: producer, sequence: sequence)
    }

    /// `ABC…Z` repeated, long enough for any filler (at most 599 bytes) from any of its 26 starting letters.
    static let alphabet: [UInt8] = (0..<(600 + 26)).map { UInt8(65 + $0 % 26) }
}

/// The path of an executable built alongside the test bundle.
func productBinary(_ name: String) -> String? {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let packageBuild = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug")
    for directory in [bundleDirectory, bundleDirectory.deletingLastPathComponent(), packageBuild] {
        let candidate = directory.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
