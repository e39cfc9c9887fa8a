import Foundation
import KeijiCore

/// What the figures were measured on: they mean nothing without it.
struct MachineDescription: Sendable, Codable {
    var date: String
    var onlineCPUs: Int
    var cpuModel: String?
    var kernel: String
    /// The file system holding the benchmark directory, e.g. `ext4`, and its device and mount point.
    var filesystem: String
    var device: String
    var mountPoint: String
    var directory: String
    /// `/proc/loadavg` when the run started: other work on the machine skews every figure.
    var loadAverage: String?

    static func current(directory: String) -> MachineDescription {
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: names.release) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        let mount = mountEntry(containing: directory)
        return MachineDescription(
            date: ISO8601.string(fromSeconds: Int64(time(nil))),
            onlineCPUs: sysconf(Int32(_SC_NPROCESSORS_ONLN)),
            cpuModel: cpuModel(),
            kernel: release,
            filesystem: mount?.type ?? "unknown",
            device: mount?.device ?? "unknown",
            mountPoint: mount?.point ?? "unknown",
            directory: directory,
            loadAverage: (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
                .map { $0.split(separator: " ").prefix(3).joined(separator: " ") })
    }

    /// The `/proc/self/mounts` entry with the longest mount point that is a prefix of `path`.
    private static func mountEntry(containing path: String) -> (device: String, point: String, type: String)? {
        guard let table = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var best: (device: String, point: String, type: String)?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            // Mount points escape spaces and the like as octal (\040).
            let point = String(fields[1]).replacingOccurrences(of: "\\040", with: " ")
            let inside = point == "/" || resolved == point || resolved.hasPrefix(point + "/")
            if inside, point.count >= (best?.point.count ?? -1) {
                best = (String(fields[0]), point, String(fields[2]))
            }
        }
        return best
    }

    private static func cpuModel() -> String? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }
}
