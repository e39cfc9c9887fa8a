import Foundation

/// `~/keiji/settings.conf`, parsed and validated as a whole: a file with any invalid value is rejected with
/// an error naming the key and the file, and nothing from it is used (never half-applied).
///
/// Keys (the seed's): `DB_URL` (`default` = SQLite, or a `postgres://`/`postgresql://` URL: the query view then lives there), `TIME_ZONE` (any IANA zone),
/// `ROTATE_LOGS` (`0`/`1`), `LOG_MAX_SIZE` (bytes, or with a `KB`/`MB`/`GB` suffix); and keiji's own bus keys
/// `BUS_TRANSPORT` (`unix`/`tcp`), `BUS_PUSH_PORT`, `BUS_PULL_PORT` (1–65535, used with `tcp`), `METRICS_PORT`
/// (0 = off, or 1–65535: the scheduler's Prometheus endpoint on 127.0.0.1), `DASHBOARD_PORT` (0 = off, or 1–65535: the
/// scheduler's web dashboard on 127.0.0.1) and `NODE_NAME` (the scheduler's name in a
/// cluster). Unlike the original,
/// variables in the environment do not override the file: what the file says is what runs.
public struct Settings: Sendable, Equatable {
    public enum Database: Sendable, Equatable, CustomStringConvertible {
        /// The query view in `~/.keiji/db/keiji.db`.
        case sqlite
        /// The query view in this PostgreSQL database (`postgres://` or `postgresql://`; checked when read,
        /// connected to when used).
        case postgres(URL)

        /// How messages name the setting: `DB_URL=default`, or the URL with its password masked.
        public var description: String {
            switch self {
            case .sqlite: "DB_URL=default"
            case .postgres(let url): "DB_URL=\(Self.redacted(url))"
            }
        }

        /// `url` as it may be shown: its password replaced by `***` (never printed, logged or reported), in each
        /// place libpq takes one: the user info (`user:pw@`) and the query (`?password=pw`).
        public static func redacted(_ url: URL) -> String {
            guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return redacted(url.absoluteString) }
            if components.password != nil { components.percentEncodedPassword = "***" }
            if let items = components.percentEncodedQueryItems, items.contains(where: isPassword) {
                components.percentEncodedQueryItems = items.map { isPassword($0) ? URLQueryItem(name: $0.name, value: "***") : $0 }
            }
            return components.string ?? redacted(url.absoluteString)
        }

        /// The passwords `url` holds, as written and percent-decoded: the user info's and the query's.
        public static func passwords(in url: URL) -> [String] {
            guard let components = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return [] }
            let query = (components.percentEncodedQueryItems ?? []).filter(isPassword).compactMap(\.value)
            return ([components.percentEncodedPassword, components.password] + query + query.map { $0.removingPercentEncoding })
                .compactMap { $0 }.filter { !$0.isEmpty }
        }

        /// A query parameter libpq reads as the password (it percent-decodes names too).
        private static func isPassword(_ item: URLQueryItem) -> Bool {
            (item.name.removingPercentEncoding ?? item.name) == "password"
        }

        /// A URL-like text that may not parse, with what stands between the scheme's `user:` and the last
        /// `@` masked (the password of `postgres://user:pw@host/db`, however malformed the rest is), and the value
        /// of every `password=` up to the next `&`.
        public static func redacted(_ text: String) -> String {
            var masked = text
            var from = masked.startIndex
            while let key = masked.range(of: "password=", range: from..<masked.endIndex) {
                let end = masked[key.upperBound...].firstIndex { $0 == "&" || $0 == " " || $0 == "\"" } ?? masked.endIndex
                masked.replaceSubrange(key.upperBound..<end, with: "***")
                from = masked.index(key.upperBound, offsetBy: 3)
            }
            guard let scheme = masked.range(of: "://") else { return masked }
            let rest = masked[scheme.upperBound...]
            guard let at = rest.lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") else { return masked }
            return String(masked[..<rest.index(after: colon)]) + "***" + String(rest[at...])
        }
    }

    public var database: Database = .sqlite
    /// The identifier as written (Foundation reports `UTC` as `GMT`; users should see what they wrote).
    public var timeZoneIdentifier: String = "UTC"
    public var rotateLogs: Bool = true
    public var logMaxSize: Int = 10 << 20
    /// How the CLI and the scheduler reach keiji-bus. `unix` (the default) keeps the bus per user: its sockets
    /// live in the user's 0700 `~/.keiji`, so two users on one machine never collide on a port.
    public var busTransport: BusTransport = .unix
    /// With `BUS_TRANSPORT=tcp`: the loopback ports for commands (CLI) and for the scheduler (the seed's 8005/8006).
    public var busPushPort: UInt16 = 8005
    public var busPullPort: UInt16 = 8006
    /// This scheduler's name in a cluster (every keiji whose `DB_URL` names the same PostgreSQL database):
    /// `NODE_NAME`, by default the host name. Nodes on one machine (tests) need names of their own.
    public var nodeName: String = Settings.hostName()
    /// The loopback port of the scheduler's Prometheus endpoint (`GET /metrics`); nil is `METRICS_PORT=0`, off.
    /// Off unless asked for: a per-user service opens no TCP port by itself, and two users on one machine
    /// would collide on a fixed default (the reason the bus defaults to Unix sockets).
    public var metricsPort: UInt16?
    /// The loopback port of the scheduler's web dashboard; nil is `DASHBOARD_PORT=0`, off (for the same reasons).
    public var dashboardPort: UInt16?

    public enum BusTransport: String, Sendable, Equatable {
        case unix, tcp
    }

    public var timeZone: TimeZone { TimeZone(identifier: timeZoneIdentifier) ?? TimeZone(identifier: "UTC")! }

    public init() {}

    /// The file `keiji init` writes: the system's time zone when it has a name, otherwise UTC.
    public static func defaultFileContents(timeZone: String = Settings.systemTimeZoneIdentifier()) -> String {
        """
        # keiji settings. The scheduler reads them when it starts.
        # DB_URL: `default` (SQLite in ~/.keiji/db/keiji.db) or postgres://user:password@host:5432/db
        DB_URL=default
        # TIME_ZONE: any IANA zone, e.g. UTC, Europe/London, America/Argentina/Buenos_Aires
        TIME_ZONE=\(timeZone)
        # ROTATE_LOGS: 1 rolls task and service logs at LOG_MAX_SIZE and compresses old ones (lz4), 0 never rolls
        ROTATE_LOGS=1
        # LOG_MAX_SIZE: bytes, or with a KB, MB or GB suffix
        LOG_MAX_SIZE=10MB
        # BUS_TRANSPORT: `unix` (sockets in ~/.keiji, per user; the default) or `tcp` (127.0.0.1 on the ports below)
        BUS_TRANSPORT=unix
        # BUS_PUSH_PORT, BUS_PULL_PORT: 1-65535, used with BUS_TRANSPORT=tcp (commands, scheduler)
        BUS_PUSH_PORT=8005
        BUS_PULL_PORT=8006
        # METRICS_PORT: 0 (off) or 1-65535: the scheduler serves Prometheus metrics at http://127.0.0.1:PORT/metrics
        # (e.g. 9464), to requests bearing the token in ~/.keiji/metrics.token (see docs/operations.md)
        METRICS_PORT=0
        # DASHBOARD_PORT: 0 (off) or 1-65535: the scheduler serves a web dashboard at http://127.0.0.1:PORT/
        # (e.g. 9465); you log in with the token in ~/.keiji/dashboard.token (see docs/operations.md)
        DASHBOARD_PORT=0
        # NODE_NAME: this scheduler's name in a cluster (schedulers whose DB_URL names one PostgreSQL database);
        # letters, digits, '.', '_' and '-', at most 63; the host name when not set
        # NODE_NAME=

        """
    }

    public static func systemTimeZoneIdentifier() -> String {
        if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/etc/localtime"),
            let range = link.range(of: "zoneinfo/")
        {
            let identifier = String(link[range.upperBound...])
            if TimeZone(identifier: identifier) != nil { return identifier }
        }
        return "UTC"
    }

    /// Reads and validates a settings file.
    public static func load(from path: String) throws -> Settings {
        guard try FileSystem.existsOrThrows(path) else {
            throw KeijiError(.notInitialized, "\(path) does not exist; run `keiji init` first")
        }
        let data = try FileSystem.read(path)
        guard let text = String(data: data, encoding: .utf8) else {
            throw KeijiError(.invalidSetting, "\(path) is not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws -> Settings {
        var settings = Settings()
        var seen: Set<String> = []
        // By scalars: "\r\n" is one Character, so a file saved with Windows line endings split by Characters was one
        // line (and, behind a leading comment, all of it a comment: every setting silently at its default).
        for (index, rawLine) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(String.UnicodeScalarView(rawLine.last == "\r" ? rawLine.dropLast() : rawLine)).trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let at = "\(file):\(index + 1)"
            guard let equals = line.firstIndex(of: "=") else {
                throw KeijiError(.invalidSetting, "\(at): expected KEY=VALUE, found \"\(line)\"")
            }
            let key = line[..<equals].trimmingSpaces()
            var value = line[line.index(after: equals)...].trimmingSpaces()
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard seen.insert(key).inserted else { throw KeijiError(.invalidSetting, "\(at): \(key) is set twice") }
            switch key {
            case "DB_URL": settings.database = try parseDatabase(value, at: at)
            case "TIME_ZONE":
                guard !value.isEmpty, TimeZone(identifier: value) != nil else {
                    throw KeijiError(.invalidSetting, "\(at): TIME_ZONE \"\(value)\" is not a known IANA time zone (e.g. UTC, Europe/London, America/Argentina/Buenos_Aires)")
                }
                settings.timeZoneIdentifier = value
            case "ROTATE_LOGS":
                guard value == "0" || value == "1" else {
                    throw KeijiError(.invalidSetting, "\(at): ROTATE_LOGS must be 0 or 1, found \"\(value)\"")
                }
                settings.rotateLogs = value == "1"
            case "LOG_MAX_SIZE": settings.logMaxSize = try parseSize(value, at: at)
            case "BUS_TRANSPORT":
                guard let transport = BusTransport(rawValue: value) else {
                    throw KeijiError(.invalidSetting, "\(at): BUS_TRANSPORT must be unix or tcp, found \"\(value)\"")
                }
                settings.busTransport = transport
            case "BUS_PUSH_PORT": settings.busPushPort = try parsePort(value, key: key, at: at)
            case "BUS_PULL_PORT": settings.busPullPort = try parsePort(value, key: key, at: at)
            case "METRICS_PORT":
                guard let port = UInt16(value) else {
                    throw KeijiError(.invalidSetting, "\(at): METRICS_PORT must be 0 (off) or a port from 1 to 65535, found \"\(value)\"")
                }
                settings.metricsPort = port == 0 ? nil : port
            case "DASHBOARD_PORT":
                guard let port = UInt16(value) else {
                    throw KeijiError(.invalidSetting, "\(at): DASHBOARD_PORT must be 0 (off) or a port from 1 to 65535, found \"\(value)\"")
                }
                settings.dashboardPort = port == 0 ? nil : port
            case "NODE_NAME":
                guard Self.isValidNodeName(value) else {
                    throw KeijiError(.invalidSetting, "\(at): NODE_NAME must be 1-63 letters, digits, '.', '_' or '-', found \"\(value)\"")
                }
                settings.nodeName = value
            default:
                throw KeijiError(.invalidSetting, "\(at): unknown key \(key) (known: DB_URL, TIME_ZONE, ROTATE_LOGS, LOG_MAX_SIZE, BUS_TRANSPORT, BUS_PUSH_PORT, BUS_PULL_PORT, METRICS_PORT, DASHBOARD_PORT, NODE_NAME)")
            }
        }
        // The ports the services listen on, two equal ones and one of them could not bind. The bus's count only over tcp:
        // under unix the file's ports are used only beside an environment override of the other one
        // (BusEndpoints.resolve), so equal ones were refused for nothing.
        let listened: [(key: String, port: UInt16?)] = [("METRICS_PORT", settings.metricsPort), ("DASHBOARD_PORT", settings.dashboardPort)]
            + (settings.busTransport == .tcp ? [("BUS_PUSH_PORT", settings.busPushPort), ("BUS_PULL_PORT", settings.busPullPort)] : [])
        for (index, first) in listened.enumerated() {
            guard let port = first.port, let second = listened[(index + 1)...].first(where: { $0.port == port }) else { continue }
            throw KeijiError(.invalidSetting, "\(file): \(first.key) and \(second.key) must differ, both are \(port)")
        }
        return settings
    }

    /// A node name as it appears in claims, the nodes table and the CLI's tables: short, printable, no spaces.
    public static func isValidNodeName(_ name: String) -> Bool {
        (1...63).contains(name.utf8.count)
            && name.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    /// The host name (`gethostname`), cut to a valid node name; `keiji` if it has nothing usable.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "keiji" }
        let name = String(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
            .prefix(63))
        return isValidNodeName(name) ? name : "keiji"
    }

    static func parsePort(_ value: String, key: String, at: String) throws -> UInt16 {
        guard let port = UInt16(value), port >= 1 else {
            throw KeijiError(.invalidSetting, "\(at): \(key) must be a port from 1 to 65535, found \"\(value)\"")
        }
        return port
    }

    static func parseDatabase(_ value: String, at: String) throws -> Database {
        if value == "default" { return .sqlite }
        guard let url = URL(string: value), let scheme = url.scheme, scheme == "postgres" || scheme == "postgresql",
            let host = url.host, !host.isEmpty, url.path.count > 1, !url.path.dropFirst().contains("/")
        else {
            throw KeijiError(.invalidSetting, "\(at): DB_URL must be `default` or postgres://user[:password]@host[:port]/database, found \"\(Database.redacted(value))\"")
        }
        if let port = url.port, !(1...65535).contains(port) {
            throw KeijiError(.invalidSetting, "\(at): DB_URL port \(port) is out of range")
        }
        return .postgres(url)
    }

    static func parseSize(_ value: String, at: String) throws -> Int {
        let upper = value.uppercased()
        let units: [(String, Int)] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)]
        var number = upper
        var multiplier = 1
        for (suffix, size) in units where upper.hasSuffix(suffix) {
            number = String(upper.dropLast(suffix.count)).trimmingSpaces()
            multiplier = size
            break
        }
        guard let count = Int(number), count > 0, count <= (1 << 40) / multiplier else {
            throw KeijiError(.invalidSetting, "\(at): LOG_MAX_SIZE must be a size from 1 byte to 1 TiB (1024GB), such as 1048576, 512KB or 10MB, found \"\(value)\"")
        }
        return max(count * multiplier, 1024)
    }
}
