import Foundation
import Testing

@testable import KeijiCore

/// The daemon's end of the readiness socket writes exactly the lines ``ServiceReadiness`` defines: notes leave
/// the socket open, `ready` and `refused` close it.
struct ServiceReadinessTests {
    func lines(_ reports: [ServiceReadiness.Report]) throws -> String {
        var ends: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { close(ends[0]) }
        let notifier = ServiceReadiness.Notifier(fd: ends[1])
        for report in reports { notifier.report(report) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(ends[0], &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n <= 0 { break }
            received += buffer[..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }

    @Test func eachReportIsItsLine() throws {
        #expect(try lines([.ready]) == "ready\n")
        #expect(try lines([.refused("port taken\nreally")]) == "refused port taken really\n")
        #expect(try lines([.note("metrics off"), .note("dashboard off"), .ready, .ready]) == "note metrics off\nnote dashboard off\nready\n")
        #expect(try lines([.refused("no"), .ready]) == "refused no\n", "after the report, nothing more is sent")
        for line in ["ready\n", "refused port taken really\n", "note metrics off\n"] {
            #expect(ServiceReadiness.Report(line: Substring(line.dropLast())).map { try? self.lines([$0]) } == line)
        }
    }
}
