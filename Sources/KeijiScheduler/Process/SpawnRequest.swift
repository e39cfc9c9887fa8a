import CSpawn
import KeijiCore

/// One run for keiji-spawn-server to start: what to exec, where, with which environment, and the log its stdout
/// and stderr (a pipe) are relayed into.
struct SpawnRequest: Sendable {
    var program: String
    /// argv, argv[0] included.
    var arguments: [String]
    var environment: EnvironmentBlock
    var directory: String
    var outputDescriptor: Int32
    /// Look `program` up in the PATH of `environment` (a command exec'd directly).
    var searchPath: Bool
    /// SIGTERM to SIGKILL, when the scheduler goes away while the run is going.
    var graceMilliseconds: UInt32
    /// A dated start: the server holds it until this wall-clock instant (milliseconds since the epoch); nil: at once.
    var notBeforeMilliseconds: Int64? = nil

    /// The start message: the fixed header, then `program\0cwd\0`, argv and the environment, NUL-terminated.
    func message(tag: UInt64) throws -> [UInt8] {
        for text in [program, directory] + arguments where text.utf8.contains(0) {
            throw KeijiError(.spawn, "cannot start \(VisibleText.escaped(program)): an argument or the directory holds a NUL byte")
        }
        var header = keiji_spawn_request()
        header.kind = UInt32(KEIJI_SPAWN_START.rawValue)
        header.flags = searchPath ? UInt32(KEIJI_SPAWN_SEARCH_PATH.rawValue) : 0
        header.tag = tag
        header.argc = UInt32(arguments.count)
        header.envc = UInt32(environment.count)
        header.grace_ms = graceMilliseconds
        header.not_before_ns = notBeforeMilliseconds.map { UInt64(clamping: TimeArithmetic.product($0, 1_000_000)) } ?? 0
        var bytes: [UInt8] = []
        bytes.reserveCapacity(MemoryLayout<keiji_spawn_request>.size + program.utf8.count + directory.utf8.count + 2
                              + arguments.reduce(0) { $0 + $1.utf8.count + 1 } + environment.bytes.count)
        withUnsafeBytes(of: &header) { bytes.append(contentsOf: $0) }
        for text in [program, directory] + arguments {
            bytes.append(contentsOf: text.utf8)
            bytes.append(0)
        }
        bytes.append(contentsOf: environment.bytes)
        let limit = Int(KEIJI_SPAWN_MAX_MESSAGE)
        guard bytes.count <= limit else {
            throw KeijiError(.spawn, "cannot start \(VisibleText.escaped(program)): its arguments and environment take \(bytes.count) bytes; at most \(limit) are accepted")
        }
        return bytes
    }

    static func signalMessage(tag: UInt64, signal: Int32) -> [UInt8] {
        var header = keiji_spawn_request()
        header.kind = UInt32(KEIJI_SPAWN_SIGNAL.rawValue)
        header.tag = tag
        header.signal = signal
        return withUnsafeBytes(of: &header) { Array($0) }
    }

    static func cancelMessage(tag: UInt64) -> [UInt8] {
        var header = keiji_spawn_request()
        header.kind = UInt32(KEIJI_SPAWN_CANCEL.rawValue)
        header.tag = tag
        return withUnsafeBytes(of: &header) { Array($0) }
    }
}
