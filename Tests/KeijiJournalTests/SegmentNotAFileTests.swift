import Foundation
import Synchronization
import Testing

@testable import KeijiJournal

/// A segment a run (the same user) replaced with a FIFO held the journal's open for ever, and with it the scheduler's
/// start and every command that opens the journal; one replaced with a link was read through it. Either is refused
/// at once, naming the file.
struct SegmentNotAFileTests {
    final class Outcome: Sendable {
        let text = Mutex<String?>(nil)
    }

    /// What opening the journal at `path` threw ("opened" when it did not), or nil while it still waits after
    /// `seconds`: its thread is then left waiting, so the test fails rather than hangs.
    func openOutcome(_ path: String, within seconds: Double) -> String? {
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do {
                _ = try Journal.open(directory: path, options: testOptions())
                outcome.text.withLock { $0 = "opened" }
            } catch {
                outcome.text.withLock { $0 = "\(error)" }
            }
            done.signal()
        }
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        return outcome.text.withLock { $0 }
    }

    @Test func aSegmentThatIsAFIFOOrALinkIsRefusedAtOnce() async throws {
        let root = TemporaryDirectory("not-a-file")
        defer { root.remove() }
        let path = root.path + "/journal"
        let journal = try Journal.open(directory: path, options: testOptions())
        _ = try await appendPayloads(journal, through: 3)
        try await journal.close()
        let segment = path + "/" + (try #require(try FileManager.default.contentsOfDirectory(atPath: path).first { $0.hasSuffix(".jnl") }))
        let saved = root.path + "/saved.jnl"
        #expect(rename(segment, saved) == 0)

        #expect(symlink(saved, segment) == 0)
        #expect(openOutcome(path, within: 30) == "'open' failed on \(segment): it is a symbolic link, not a file")
        unlink(segment)
        #expect(mkfifo(segment, 0o600) == 0)
        #expect(openOutcome(path, within: 30) == "'open' failed on \(segment): it is a FIFO, not a file")
    }
}
