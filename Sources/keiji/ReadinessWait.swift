import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji system --start`'s wait for a daemon it has just spawned: until the daemon reports `ready` or
/// `refused <reason>` on its readiness socket (``ServiceReadiness``), or dies first. A fixed wait would call
/// a scheduler still replaying a large journal "started", and miss a refusal that comes after it.
struct ReadinessWait {
    enum Outcome: Equatable {
        /// With the daemon's notes (``ServiceReadiness/Report/note(_:)``), in order.
        case ready(notes: [String])
        case refused(String)
        /// The daemon closed the socket without a report: it exited or crashed.
        case died
        case timedOut
        /// `interrupted` said so first.
        case interrupted
    }

    /// Generous: recovery replays the whole journal after the last checkpoint. Progress is printed meanwhile.
    var deadline: Duration = .seconds(120)
    var progressInterval: Duration = .seconds(10)
    /// Asked about 4 times a second: a start that was interrupted stops waiting and stops the daemon again.
    var interrupted: () -> Bool = { false }

    /// Reads the report from `fd` (and the notes before it), calling `progress` with the time waited every
    /// `progressInterval`.
    func wait(on fd: Int32, progress: (Duration) -> Void) -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        var nextProgress = progressInterval
        var line: [UInt8] = []
        var notes: [String] = []
        while true {
            let waited = clock.now - start
            if waited >= deadline { return .timedOut }
            if waited >= nextProgress {
                progress(waited)
                nextProgress += progressInterval
            }
            var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pending, 1, 250)
            // After the poll, so an interrupt wins over a report that came after it.
            if interrupted() { return .interrupted }
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 1024)
            let count = read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR || errno == EAGAIN { continue }
            guard count > 0 else { return .died }
            line += chunk[..<count]
            while let end = line.firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: line[..<end], as: UTF8.self)
                line.removeSubrange(...end)
                switch ServiceReadiness.Report(line: Substring(text)) {
                case .ready: return .ready(notes: notes)
                case .refused(let reason): return .refused(reason)
                case .note(let note): if notes.count < 100 { notes.append(note) }
                case nil: return .refused(text)  // none: whatever it said is the best reason there is
                }
            }
            if line.count > 64 * 1024 { return .refused(String(decoding: line.prefix(200), as: UTF8.self)) }
        }
    }

    /// Reaps `pid` if it exits within `timeout`; says how it ended ("exited with status 1", "was killed by
    /// signal 4"), or nil if it is still running.
    static func reap(_ pid: pid_t, within timeout: Duration = .seconds(5)) -> String? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        repeat {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                let signal = status & 0x7f
                return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
            }
            if reaped < 0, errno != EINTR { return "has exited" }
            usleep(50_000)
        } while clock.now < deadline
        return nil
    }

    /// The line of a service log that best says why the daemon died: a Swift runtime `Fatal error` line if
    /// there is one near the end, else the last non-empty line.
    static func lastWords(in log: LogFile) -> String? {
        let lines = ((try? log.lastLines(50)) ?? []).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.last { $0.contains("Fatal error") } ?? lines.last
    }
}
