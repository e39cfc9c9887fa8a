import Foundation
import KeijiCore

/// The shared secret in `~/.keiji/bus.token` (a ``TokenFile``). It never crosses the wire: every bus
/// connection opens with ``BusHandshake``, where the bus, the CLI and the scheduler each prove they know it,
/// which is what stops another local user (or a listener squatting on a TCP port while keiji-bus is down) from
/// sending this user's scheduler commands or receiving them. `/metrics` and the dashboard have tokens of their
/// own: theirs are sent in clear to whatever holds their port.
public enum BusToken {
    /// Reads the token, creating it if it is missing or empty (``TokenFile/loadOrCreate(_:in:)``).
    public static func loadOrCreate(_ workspace: Workspace) throws -> String {
        try TokenFile.loadOrCreate(workspace.busTokenFile, in: workspace.systemRoot)
    }
}
