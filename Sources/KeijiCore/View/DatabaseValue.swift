/// A value bound to a statement or written to a view column, in the types both of the view's back ends store.
public enum DatabaseValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)

    public static func optional(_ text: String?) -> DatabaseValue { text.map(DatabaseValue.text) ?? .null }
    public static func optional(_ n: Int64?) -> DatabaseValue { n.map(DatabaseValue.integer) ?? .null }
    public static func bool(_ b: Bool) -> DatabaseValue { .integer(b ? 1 : 0) }

    /// The value in PostgreSQL's text format (nil for NULL), as libpq sends a text parameter.
    public var text: String? {
        switch self {
        case .null: nil
        case .integer(let n): String(n)
        case .text(let s): s
        }
    }
}
