/// A validated task name. The one rule: 1–64 characters from `A–Z a–z 0–9 _ -`, starting with a letter or
/// digit. That excludes `/`, `..`, spaces, quotes and control characters, so a name is always safe as a path
/// component and as an argument (no path traversal, no shell injection). The slug (used for log paths and
/// uniqueness) is the lower-cased name, so `Backup` and `backup` cannot both exist.
public struct TaskName: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let rawValue: String

    public init(_ raw: String) throws {
        if let problem = Self.problem(with: raw) {
            throw KeijiError(.invalidName, "invalid task name \(Self.quoted(raw)): \(problem)")
        }
        rawValue = raw
    }

    public var slug: String { rawValue.lowercased() }
    public var description: String { rawValue }

    public static func < (a: TaskName, b: TaskName) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(raw) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    static func problem(with raw: String) -> String? {
        if raw.isEmpty { return "a name is required" }
        // "letter" alone was untrue of `é`, refused as one: the letters and digits are ASCII's.
        let first = raw.unicodeScalars.first!
        guard first.isASCII, first.properties.isAlphabetic || ("0"..."9").contains(first) else {
            return "must start with an ASCII letter or digit (A-Z, a-z, 0-9)"
        }
        for scalar in raw.unicodeScalars {
            let ok = scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
                || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-")
            if !ok {
                return "only ASCII letters and digits, '_' and '-' are allowed (found \(Self.describe(scalar)))"
            }
        }
        // Checked last: the name is ASCII by now, so its bytes are its characters.
        if raw.utf8.count > 64 { return "at most 64 characters" }
        return nil
    }

    private static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case " ": "a space"
        case "/": "'/'"
        case ".": "'.'"
        default: scalar.properties.generalCategory == .control ? "a control character" : "'\(scalar)'"
        }
    }

    private static func quoted(_ raw: String) -> String {
        "\"" + raw.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : String($0) }.joined() + "\""
    }
}
