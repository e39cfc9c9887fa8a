import Foundation
import Testing

@testable import KeijiCore

struct SettingsTests {
    @Test func theDefaultFileParses() throws {
        let settings = try Settings.parse(Settings.defaultFileContents(timeZone: "Africa/Nairobi"), file: "settings.conf")
        #expect(settings.database == .sqlite && settings.timeZoneIdentifier == "Africa/Nairobi")
        #expect(settings.rotateLogs && settings.logMaxSize == 10 << 20)
        #expect(settings.metricsPort == nil, "the metrics endpoint is off unless asked for")
    }

    @Test func timeZonesTheOriginalRejectedAreAccepted() throws {
        for zone in ["UTC", "America/Argentina/Buenos_Aires", "America/Port-au-Prince", "Etc/GMT+3"] {
            #expect(try Settings.parse("TIME_ZONE=\(zone)", file: "s").timeZoneIdentifier == zone)
        }
    }

    @Test func theSeedFileParses() throws {
        let seed = "DB_URL=default\nTIME_ZONE=Africa/Nairobi\nROTATE_LOGS=0\nLOG_MAX_SIZE=1024"
        let settings = try Settings.parse(seed, file: "s")
        #expect(!settings.rotateLogs && settings.logMaxSize == 1024)
    }

    /// A file saved with Windows line endings reads as the same file: each setting on its line, errors on one line.
    @Test func windowsLineEndingsReadAsLines() throws {
        let file = Settings.defaultFileContents(timeZone: "Asia/Tokyo").replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try Settings.parse(file, file: "s").timeZoneIdentifier == "Asia/Tokyo")
        let seed = try Settings.parse("# mine\r\nTIME_ZONE=Asia/Tokyo\r\nROTATE_LOGS=0\r\nLOG_MAX_SIZE=1024\r\n", file: "s")
        #expect(seed.timeZoneIdentifier == "Asia/Tokyo" && !seed.rotateLogs && seed.logMaxSize == 1024)
        #expect { try Settings.parse("# mine\r\nTIME_ZONE=Asia/Tokyo\r\nLOG_MAX_SIZE=-5\r\n", file: "s") } throws: { error in
            let message = (error as? KeijiError)?.message ?? ""
            return message.hasPrefix("s:3: LOG_MAX_SIZE") && !message.contains("\r") && !message.contains("\n")
        }
    }

    @Test func postgresURLsAreValidated() throws {
        let ok = try Settings.parse("DB_URL=postgres://keiji_user:secret@db.local:5432/keiji?sslmode=require", file: "s")
        guard case .postgres(let url) = ok.database else { Issue.record("expected postgres"); return }
        #expect(url.host == "db.local")
        #expect(ok.database.description == "DB_URL=postgres://keiji_user:***@db.local:5432/keiji?sslmode=require", "the password is never shown")
        #expect(try Settings.parse("DB_URL=postgresql://u@h/db", file: "s").database.description == "DB_URL=postgresql://u@h/db")
        for bad in ["mysql://u@h/db", "postgres://", "postgres://h", "postgres://u@h:99999/db", "sqlite"] {
            #expect(throws: KeijiError.self, "\(bad)") { try Settings.parse("DB_URL=\(bad)", file: "s") }
        }
        // A URL too broken to parse is quoted back with what follows `user:` up to the last `@` masked.
        #expect { try Settings.parse("DB_URL=postgres://keiji:s3cr@t@@/db", file: "s") } throws: { error in
            let message = (error as? KeijiError)?.message ?? ""
            return message.contains("DB_URL must be") && message.contains("postgres://keiji:***@/db") && !message.contains("s3cr")
        }
    }

    /// libpq also takes the password from the URL's query (`?password=`, its name percent-encoded or not): it is
    /// masked there too, in the setting's description, in a URL too broken to parse, and found for the
    /// settings file's mode warning and for connection errors.
    @Test func aPasswordInTheQueryIsNeverShown() throws {
        let settings = try Settings.parse("DB_URL=postgresql://keiji@127.0.0.1:33120/keiji?sslmode=disable&password=abee1041&x=1", file: "s")
        guard case .postgres(let url) = settings.database else { Issue.record("expected postgres"); return }
        #expect(settings.database.description == "DB_URL=postgresql://keiji@127.0.0.1:33120/keiji?sslmode=disable&password=***&x=1")
        #expect(Settings.Database.passwords(in: url).contains("abee1041"))
        let both = try #require(URL(string: "postgres://u:p%40ss@h/db?pass%77ord=q%26r"))
        #expect(Settings.Database.redacted(both) == "postgres://u:***@h/db?pass%77ord=***")
        #expect(Set(Settings.Database.passwords(in: both)).isSuperset(of: ["p%40ss", "p@ss", "q%26r", "q&r"]))
        #expect(Settings.Database.redacted("postgres://h/db?password=SECRETQ&sslmode=disable password=two")
                == "postgres://h/db?password=***&sslmode=disable password=***")
        #expect(Settings.Database.passwords(in: try #require(URL(string: "postgres://u@h/db?sslmode=disable"))).isEmpty)
    }

    /// A database error is shown with the password masked. A short one only where it stands alone: masked inside words,
    /// `p` turned "port 5999 failed … accepting" into "***ort 5999 failed … acce***ting", telling its letters.
    @Test func aShortPasswordIsMaskedWhereItStandsAloneNotInsideWords() {
        let message = #"connection to server at "127.0.0.1", port 5999 failed: Connection refused; Is the server accepting TCP/IP connections?"#
        #expect(PostgresConnection.redact(message, ["p"]) == message, "nothing of the message changed")
        #expect(PostgresConnection.redact("bad URL postgres://u:p@h:5999/db (p)", ["p"]) == "bad URL postgres://u:***@h:5999/db (***)")
        #expect(PostgresConnection.redact("password=s3cr3tpw and xs3cr3tpwx", ["s3cr3tpw"]) == "password=*** and x***x", "a long one wherever it is")
        #expect(PostgresConnection.redact("u:ab%40c@h and ab@c", ["ab%40c", "ab@c"]) == "u:***@h and ***", "each form of it")
    }

    @Test func everyErrorNamesTheKeyAndTheFile() {
        let cases = ["TIME_ZONE=Mars/Olympus": "TIME_ZONE", "ROTATE_LOGS=yes": "ROTATE_LOGS", "LOG_MAX_SIZE=-1": "LOG_MAX_SIZE",
                     "LOG_MAX_SIZE=ten": "LOG_MAX_SIZE", "COLOR=1": "unknown key COLOR", "TIME_ZONE": "KEY=VALUE",
                     "ROTATE_LOGS=1\nROTATE_LOGS=0": "set twice",
                     "METRICS_PORT=65536": "METRICS_PORT must be 0 (off) or a port from 1 to 65535",
                     "METRICS_PORT=-1": "METRICS_PORT must be", "METRICS_PORT=": "METRICS_PORT must be",
                     "METRICS_PORT=9464x": "METRICS_PORT must be",
                     "DASHBOARD_PORT=65536": "DASHBOARD_PORT must be 0 (off) or a port from 1 to 65535",
                     "DASHBOARD_PORT=-1": "DASHBOARD_PORT must be", "DASHBOARD_PORT=": "DASHBOARD_PORT must be"]
        for (text, fragment) in cases {
            #expect { try Settings.parse(text, file: "/home/u/keiji/settings.conf") } throws: { error in
                let message = (error as? KeijiError)?.message ?? ""
                return message.contains(fragment) && message.contains("/home/u/keiji/settings.conf:")
            }
        }
    }

    @Test func metricsPortIsOffAtZeroAndALoopbackPortOtherwise() throws {
        #expect(try Settings.parse("METRICS_PORT=0", file: "s").metricsPort == nil)
        #expect(try Settings.parse("METRICS_PORT=9464", file: "s").metricsPort == 9464)
        #expect(try Settings.parse("METRICS_PORT=65535", file: "s").metricsPort == 65535)
    }

    @Test func dashboardPortIsOffByDefaultAndAtZero() throws {
        #expect(try Settings.parse("", file: "s").dashboardPort == nil)
        #expect(try Settings.parse("DASHBOARD_PORT=0", file: "s").dashboardPort == nil)
        #expect(try Settings.parse("DASHBOARD_PORT=9465", file: "s").dashboardPort == 9465)
        #expect(try Settings.parse(Settings.defaultFileContents(), file: "s").dashboardPort == nil, "keiji init writes it, off")
    }

    @Test func sizesTakeSuffixes() throws {
        #expect(try Settings.parse("LOG_MAX_SIZE=512KB", file: "s").logMaxSize == 512 << 10)
        #expect(try Settings.parse("LOG_MAX_SIZE=2mb", file: "s").logMaxSize == 2 << 20)
        #expect(try Settings.parse("LOG_MAX_SIZE=\"4096\"", file: "s").logMaxSize == 4096)
    }

    /// A size past 1 TiB is refused with the real range: the message said "must be a positive size" of
    /// 9223372036854775807.
    @Test func aSizeTooLargeIsRefusedWithTheRange() throws {
        #expect(try Settings.parse("LOG_MAX_SIZE=1024GB", file: "s").logMaxSize == 1 << 40)
        for text in ["9223372036854775807", "1025GB", "1099511627777"] {
            #expect { try Settings.parse("LOG_MAX_SIZE=\(text)", file: "s") } throws: { error in
                (error as? KeijiError)?.message == "s:1: LOG_MAX_SIZE must be a size from 1 byte to 1 TiB (1024GB), such as 1048576, 512KB or 10MB, found \"\(text)\""
            }
        }
    }
}

struct TaskNameTests {
    @Test func validNames() throws {
        for name in ["ping_google", "backup-db", "Task1", "a", String(repeating: "x", count: 64)] {
            #expect(try TaskName(name).rawValue == name)
        }
        #expect(try TaskName("Backup_DB").slug == "backup_db")
    }

    @Test func invalidNamesAreRefusedWithAReason() {
        let cases = ["": "required", "../etc": "start with", "a/b": "'/'", "a b": "a space", "a..b": "'.'",
                     "x\u{7}": "control", "-rf": "start with", "name;rm": "';'", String(repeating: "x", count: 65): "64",
                     "ünïcode": "start with an ASCII letter or digit", "é": "start with an ASCII letter or digit",
                     "aé": "only ASCII letters and digits", String(repeating: "é", count: 40): "ASCII",
                     "$(id)": "start with", "a'b": "'''"]
        for (name, fragment) in cases {
            #expect { try TaskName(name) } throws: { error in
                (error as? KeijiError)?.message.contains(fragment) == true && (error as? KeijiError)?.code == .invalidName
            }
        }
    }
}
