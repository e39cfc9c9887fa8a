import Foundation
import KeijiJournal
import Testing

/// The README promises that `keiji system --status` reports every journal repair. Repairs made by an offline CLI
/// command, by `keiji journal compact` and by a strict start that then refused were cut silently: each is said by
/// the process that made it, and listed by the next start's recovery report as done by an earlier open.
struct JournalRepairReportTests {
    typealias Session = WalkthroughTests.Session

    /// The journal's last segment, and where its last batch frame starts (frames: a 40-byte header and the
    /// payload, 8-aligned, after a 4096-byte segment header; type 1 is a batch).
    static func lastBatchFrame(in journal: String) throws -> (path: String, start: Int) {
        let path = try lastSegment(in: journal)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var offset = 4096, last: Int?
        while offset + 40 <= bytes.count, bytes[offset..<(offset + 16)].contains(where: { $0 != 0 }) {
            let length = bytes[(offset + 8)..<(offset + 12)].reversed().reduce(0) { $0 << 8 | Int($1) }
            if bytes[offset + 4] == 1 { last = offset }
            offset += (40 + length + 7) & ~7
        }
        return (path, try #require(last))
    }

    static func lastSegment(in journal: String) throws -> String {
        journal + "/" + (try #require(try FileManager.default.contentsOfDirectory(atPath: journal).filter { $0.hasSuffix(".jnl") }.sorted().last))
    }

    /// Cuts the last segment 20 bytes into its last batch frame, as a crash during its write would leave it.
    static func tearLastBatch(in journal: String) throws {
        let (path, start) = try lastBatchFrame(in: journal)
        let file = try #require(FileHandle(forUpdatingAtPath: path))
        try file.truncate(atOffset: UInt64(start + 20))
        try file.close()
    }

    @Test func repairsByCommandsCompactionAndARefusedStartReachTheNextReport() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        let journal = s.home + "/.keiji/journal"
        #expect(try await s.keiji("init").status == 0)
        for name in ["alpha", "beta"] {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }

        // An offline command whose open cuts beta's torn record, and which the view (ahead now) then refuses.
        try Self.tearLastBatch(in: journal)
        var r = try await s.keiji("task", "--disable", "--name=beta")
        #expect(r.status == 1 && r.stderr.contains("warning: journal repaired: tornTailTruncated"), "\(r.stdout)\(r.stderr)")
        #expect(!r.stderr.contains("nothing was written") && r.stderr.contains("the command was not written"), "\(r.stderr)")

        // Compaction over a garbage tail.
        let file = try #require(FileHandle(forUpdatingAtPath: try Self.lastSegment(in: journal)))
        try file.seekToEnd()
        try file.write(contentsOf: Data(repeating: 0xAB, count: 64))
        try file.close()
        r = try await s.keiji("journal", "compact")
        #expect(r.status == 0 && r.stderr.contains("warning: journal repaired: tornTailTruncated"), "\(r.stdout)\(r.stderr)")

        #expect(try await s.keiji("system", "--start").status == 0)
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.components(separatedBy: "done by an earlier open (keiji, strict mode").count == 3, "both repairs: \(r.stdout)")
        #expect(!r.stdout.contains("repaired:     0 bytes"), "\(r.stdout)")
        #expect(try await s.keiji("system", "--stop").status == 0)

        // A strict start cuts a torn tail, then refuses: the stop's checkpoint covers the LSNs cut.
        try Self.tearLastBatch(in: journal)
        r = try await s.keiji("system", "--start")
        #expect(r.status != 0 && r.stderr.contains("Before refusing, this open repaired the journal: tornTailTruncated"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--start", "--recovery-mode", "pointInTime").status == 0)
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("done by an earlier open (keiji-scheduler, strict mode") && r.stdout.contains("which then refused"), "\(r.stdout)")
        #expect(r.stdout.contains("checkpointQuarantined"), "\(r.stdout)")
        #expect(!r.stdout.contains("keiji, strict mode"), "the repairs the first start reported are not reported again: \(r.stdout)")
        #expect(try await s.keiji("system", "--stop").status == 0)

        #expect(try await s.keiji("system", "--start").status == 0)
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("repaired:     0 bytes") && !r.stdout.contains("earlier open"), "\(r.stdout)")
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A checkpoint whose checksum is right but whose snapshot this keiji cannot read (a newer keiji's, after a
    /// downgrade) failed every offline command and start. Now the command sets it aside, says so, and replays the
    /// journal; the next start lists it with the reason.
    @Test func aCheckpointOfANewerKeijiIsSetAsideByTheNextCommandAndReported() async throws {
        let (s, _, _) = try await sessionWithANewerKeijisCheckpoint(tasks: ["alpha", "beta"])
        defer { s.cleanUp() }

        var r = try await s.keiji("task", "--disable", "--name=beta")
        #expect(r.status == 0 && r.stderr.contains("warning: journal repaired: checkpointQuarantined")
                && r.stderr.contains("the snapshot was written by a newer keiji (format 4)"), "\(r.stdout)\(r.stderr)")
        #expect(try await s.keiji("system", "--start").status == 0)
        r = try await s.keiji("system", "--status")
        #expect(r.stdout.contains("checkpointQuarantined") && r.stdout.contains("newer keiji (format 4)"), "\(r.stdout)")
        #expect(try await s.keiji("task", "--get", "--name=alpha").status == 0, "the tasks were replayed from the journal")
        #expect(try await s.keiji("task", "--get", "--name=beta").stdout.contains("IsDisabled: true"))
        #expect(try await s.keiji("system", "--stop").status == 0)
    }

    /// A session whose latest checkpoint verifies but holds a snapshot of a newer keiji (format 4), as after a downgrade.
    private func sessionWithANewerKeijisCheckpoint(tasks: [String] = ["alpha"]) async throws -> (session: Session, directory: String, file: String) {
        let s = try Session()
        let directory = s.home + "/.keiji/journal"
        #expect(try await s.keiji("init").status == 0)
        for name in tasks {
            #expect(try await s.keiji("task", "--create", "--name=\(name)", "--desc=x", "--command", "true", "--every", "1h").status == 0)
        }
        #expect(try await s.keiji("system", "--start").status == 0)
        #expect(try await s.keiji("system", "--stop").status == 0)
        let journal = try Journal.open(directory: directory)
        let lsn = try #require(journal.latestCheckpoint?.lsn, "the stop checkpoints")
        try await journal.writeCheckpoint([0x04] + Array(repeating: 0xAB, count: 40), at: lsn)
        try await journal.close()
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".ckpt") }.max())
        return (s, directory, file)
    }

    /// `journal verify` checked checksums only and said "ok" about a checkpoint the next start cannot read. It now
    /// names it, with the reason and what the next start will do, and still changes nothing.
    @Test func verifyNamesACheckpointThisKeijiCannotReadAndWhatTheNextStartDoes() async throws {
        let (s, directory, file) = try await sessionWithANewerKeijisCheckpoint()
        defer { s.cleanUp() }
        let r = try await s.keiji("journal", "verify")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("warning: \(file) at offset 0: checksum valid, but the snapshot was written by a newer keiji (format 4); the next start sets it aside (.broken)"),
                "\(r.stdout)")
        #expect(r.stdout.contains("ok (a damaged or unreadable checkpoint will be set aside"), "\(r.stdout)")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(files.contains(file) && !files.contains { $0.hasSuffix(".broken") }, "verify renames nothing: \(files)")
        #expect(try await s.keiji("task", "--get", "--name=alpha").status == 0)
    }

    /// `journal compact` printed the open's repairs before it loaded the state, so the checkpoint its own load set
    /// aside was recorded but never shown. It is printed now.
    @Test func compactPrintsTheUnreadableCheckpointItsLoadSetsAside() async throws {
        let (s, directory, file) = try await sessionWithANewerKeijisCheckpoint()
        defer { s.cleanUp() }
        let r = try await s.keiji("journal", "compact")
        #expect(r.status == 0 && r.stderr.contains("warning: journal repaired: checkpointQuarantined")
                && r.stderr.contains("the snapshot was written by a newer keiji (format 4)"), "\(r.stdout)\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).contains(file + ".broken"))
    }
}
