import Foundation

/// Reads one value from a task's `.env` (`KEY='value'` lines as `keiji task --create` writes them).
enum DotEnvFile {
    static func value(_ key: String, in path: String) throws -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(key + "=") {
            var value = String(line.dropFirst(key.count + 1))
            if value.count >= 2, value.hasPrefix("'"), value.hasSuffix("'") {
                value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "'\\''", with: "'")
            }
            return value
        }
        return nil
    }
}
