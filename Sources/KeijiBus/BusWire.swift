import Foundation

/// JSON encoding and decoding of single lines. JSONEncoder never emits a raw newline (not pretty-printed,
/// newlines inside strings are escaped), so one value is always exactly one line.
enum BusWire {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        // Encoding these plain structs cannot fail; a failure would be a programming error, and the bus must
        // still answer something parseable.
        guard let data = try? encoder.encode(value) else {
            return Array(#"{"ok":false,"code":"invalid","error":"internal encoding error"}"#.utf8)
        }
        return Array(data)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ line: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(line))
    }

    /// The request's `id` when the line is a JSON object with a string `id` but not a valid request, so even
    /// an `invalid` reply can be matched by a client that pipelines.
    static func salvageID(_ line: [UInt8]) -> String? {
        struct IDOnly: Decodable { var id: String? }
        return (try? decode(IDOnly.self, line))?.id
    }

    /// Up to `limit` bytes of an untrusted line, for a message that says what a peer sent: printable ASCII is
    /// kept, every other byte shows as `?` (a hostile peer cannot put escape sequences on a terminal), and `…`
    /// marks a cut.
    static func excerpt(_ line: [UInt8], limit: Int = 80) -> String {
        let shown = line.prefix(limit).map { (32...126).contains($0) ? Character(UnicodeScalar($0)) : "?" }
        return String(shown) + (line.count > limit ? "…" : "")
    }

    /// A short, single-line description of a decoding error for the `error` field.
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not a JSON object" : "wrong type for \"\(path)\""
        case DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty:
            return "invalid value for \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
        default: return "not valid JSON"
        }
    }
}
