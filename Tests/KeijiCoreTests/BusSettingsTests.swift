import Foundation
import Testing

@testable import KeijiCore

/// `BUS_TRANSPORT`, `BUS_PUSH_PORT`, `BUS_PULL_PORT` in settings.conf.
struct BusSettingsTests {
    @Test func defaultsAreAPerUserUnixSocketAndTheSeedsPorts() throws {
        let written = try Settings.parse(Settings.defaultFileContents(timeZone: "UTC"), file: "settings.conf")
        #expect(written.busTransport == .unix && written.busPushPort == 8005 && written.busPullPort == 8006)
        #expect(try Settings.parse("", file: "s") == written)
    }

    /// Over the unix transport the bus listens on no port: an HTTP port equal to a bus port is fine there.
    @Test func aBusPortIsFreeForHTTPOverTheUnixTransport() throws {
        let settings = try Settings.parse("BUS_TRANSPORT=unix\nMETRICS_PORT=8005", file: "s")
        #expect(settings.metricsPort == 8005)
    }

    @Test func tcpWithOtherPorts() throws {
        let settings = try Settings.parse("BUS_TRANSPORT=tcp\nBUS_PUSH_PORT=18005\nBUS_PULL_PORT=18006", file: "s")
        #expect(settings.busTransport == .tcp && settings.busPushPort == 18005 && settings.busPullPort == 18006)
    }

    @Test func badValuesNameTheKeyAndTheRange() throws {
        let cases = ["BUS_TRANSPORT=udp": "BUS_TRANSPORT must be unix or tcp",
                     "BUS_PUSH_PORT=0": "BUS_PUSH_PORT must be a port from 1 to 65535",
                     "BUS_PULL_PORT=65536": "BUS_PULL_PORT must be a port from 1 to 65535",
                     "BUS_PULL_PORT=http": "BUS_PULL_PORT must be a port from 1 to 65535",
                     "BUS_TRANSPORT=tcp\nBUS_PUSH_PORT=9000\nBUS_PULL_PORT=9000": "BUS_PUSH_PORT and BUS_PULL_PORT must differ",
                     "METRICS_PORT=19474\nDASHBOARD_PORT=19474": "METRICS_PORT and DASHBOARD_PORT must differ, both are 19474",
                     "BUS_TRANSPORT=tcp\nBUS_PULL_PORT=9100\nDASHBOARD_PORT=9100": "DASHBOARD_PORT and BUS_PULL_PORT must differ, both are 9100"]
        // With unix no socket is a port: equal ports there were refused for nothing.
        #expect(try Settings.parse("BUS_TRANSPORT=unix\nBUS_PUSH_PORT=9000\nBUS_PULL_PORT=9000", file: "s").busTransport == .unix)
        for (text, fragment) in cases {
            #expect { try Settings.parse(text, file: "/home/u/keiji/settings.conf") } throws: { error in
                let message = (error as? KeijiError)?.message ?? ""
                return message.contains(fragment) && message.contains("/home/u/keiji/settings.conf")
            }
        }
    }
}
