import ArgumentParser
import Foundation
import KeijiCore
import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji-bench spawn`: runs of `/bin/true` per second, back to back on one thread, through keiji's spawn
/// path (RunExecutor → keiji-spawn-server, with the task's cached environment and log) against the
/// machine's limit measured in the same run: posix_spawn + waitpid of /bin/true. Rounds alternate so a
/// change in the machine's load hits both sides alike; the figure is the ratio of the medians.
struct SpawnBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Spawn path runs/s of /bin/true through keiji ÷ raw posix_spawn+waitpid, in the same run."
    )

    @Option(help: "Seconds per round (1–60).") var seconds = 2
    @Option(help: "Rounds per side, alternating (1–20).") var rounds = 3
    @Option(help: "Parent directory for the scratch task folder.") var directory = "/tmp"

    func validate() throws {
        guard (1...60).contains(seconds) else { throw ValidationError("--seconds must be between 1 and 60 (got \(seconds))") }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 20 (got \(rounds))") }
    }

    struct Rates: Sendable {
        var raw: Double
        var keiji: Double
    }

    func run() async throws {
        var raw: [Double] = []
        var keiji: [Double] = []
        for round in 1...rounds {
            StandardError.write("round \(round)/\(rounds)…\n")
            let rates = try await Self.measure(seconds: Double(seconds), directory: directory)
            raw.append(rates.raw)
            keiji.append(rates.keiji)
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let ratio = median(keiji) / max(1, median(raw))
        print("keiji-bench spawn   \(ISO8601DateFormatter().string(from: Date()))   load average \(Self.loadAverage())")
        print("  limit: posix_spawn + waitpid of /bin/true   \(FigureFormat.count(median(raw)))/s   (rounds: \(raw.map { FigureFormat.count($0) }.joined(separator: ", ")))")
        print("  keiji: RunExecutor → keiji-spawn-server     \(FigureFormat.count(median(keiji)))/s   (rounds: \(keiji.map { FigureFormat.count($0) }.joined(separator: ", ")))")
        print("  ratio \(FigureFormat.fixed(ratio, 2))×; target ≥ 0.8×: \(ratio >= 0.8 ? "PASS" : "MISS")")
    }

    /// One round of each: the raw loop, then keiji's path, `seconds` each.
    static func measure(seconds: Double, directory: String) async throws -> Rates {
        let raw = SchedulerBenchmark.spawnRate(["/bin/true"], seconds: seconds)
        let folder = directory + "/keiji-bench-spawn-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(folder)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = LogFile(directory: folder + "/log", baseName: "probe", rotate: false, maxSize: 1 << 30)
        let keiji = try await SpawnPathProbe.runsPerSecond(command: "/bin/true", directory: folder, log: log, seconds: seconds)
        return Rates(raw: raw, keiji: keiji)
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
    }
}
