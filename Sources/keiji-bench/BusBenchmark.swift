import ArgumentParser
import Foundation
import KeijiBus
import KeijiCore
import KeijiJournal
import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keiji-bench bus`: a command's round trip (client → keiji-bus → scheduler → journaled durably →
/// acknowledgement back), beside a raw loopback TCP round trip measured in the same run.
struct BusBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus", abstract: "Command round trip through the bus and the journal, against raw loopback TCP.")

    @Option(help: "Round trips per measurement.") var count = 2000
    @Option(help: "Parent directory for the scratch workspace.") var directory = "/tmp"

    func run() async throws {
        let raw = try Self.loopbackRoundTrips(count: count)
        let root = directory + "/keiji-bench-bus-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let workspace = Workspace(home: root)
        try FileSystem.createDirectory(workspace.tasksDirectory)
        try Settings.defaultFileContents(timeZone: "UTC").write(toFile: workspace.settingsFile, atomically: true, encoding: .utf8)
        let settings = try Settings.load(from: workspace.settingsFile)
        let task = try TaskName("bench")
        let definition = TaskDefinition(name: task, description: "bus benchmark", action: .command("true"),
                                        schedule: ScheduleSpec(.every(1, .hours)), directory: workspace.tasksDirectory)
        try await OfflineCommands.submit(.taskSaved(definition, taskID: "bench"), workspace: workspace, settings: settings)

        let token = try BusToken.loadOrCreate(workspace)
        let server = BusServer(push: .tcp(port: 0), pull: .tcp(port: 0), token: token, log: { _ in })
        try server.start()
        defer { server.stop() }
        var configuration = SchedulerConfiguration(workspace: workspace, settings: settings)
        configuration.spawnProcesses = false
        let engine = SchedulerEngine(configuration: configuration)
        try await engine.start()
        let link = SchedulerBusLink(endpoint: server.boundPull, token: token, handler: { await engine.handle($0) })
        let linkTask = Task { await link.run() }
        while !link.isConnected { try await Task.sleep(for: .milliseconds(10)) }

        var direct: [Int64] = []
        for index in 0..<(count + 100) {
            let started = DispatchTime.now().uptimeNanoseconds
            _ = try await engine.submit(.taskResolved(task))
            if index >= 100 { direct.append(Int64(DispatchTime.now().uptimeNanoseconds - started) / 1000) }
        }
        let client = BusClient(endpoint: server.boundPush, token: token)
        var samples: [Int64] = []
        for index in 0..<(count + 100) {
            let request = BusRequest(id: "r\(index)", cmd: "resolve", taskID: task.rawValue)
            let started = DispatchTime.now().uptimeNanoseconds
            let reply = try await client.send(request)
            let elapsed = Int64(DispatchTime.now().uptimeNanoseconds - started) / 1000
            guard reply.ok else { throw ValidationError("the scheduler refused the command: \(reply.error ?? "?")") }
            if index >= 100 { samples.append(elapsed) }  // the first 100 warm up
        }
        linkTask.cancel()
        await engine.stop()

        let command = Percentiles(samples)
        var table = TextTable(["round trip", "p50", "p99", "max", "samples"], alignments: [.left, .right, .right, .right, .right])
        table.add(["limit: raw loopback TCP, one line each way"] + raw.row)
        table.add(["the scheduler alone: engine.submit (fdatasync)"] + Percentiles(direct).row)
        table.add(["command: client → bus → scheduler → fdatasync → ack"] + command.row)
        print("keiji-bench bus   \(ISO8601DateFormatter().string(from: Date()))\n")
        print(table.render())
        print("  command p50 \(Percentiles.format(command.p50)) (\(FigureFormat.fixed(command.p50 / max(1, raw.p50), 1))× the raw round trip); target p50 ≤ 2 ms: \(command.p50 <= 2000 ? "PASS" : "MISS")")
        print("  each command is a new TCP connection with its HMAC handshake (as the CLI makes) and one durable journal append (sync mode)")
    }

    /// A line echoed over 127.0.0.1 through a new connection each time, as the CLI's requests are.
    static func loopbackRoundTrips(count: Int) throws -> Percentiles {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 64)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = address.sin_port
        let server = Thread {
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 { return }
                let n = read(connection, &buffer, buffer.count)
                if n > 0 { _ = write(connection, buffer, n) }
                close(connection)
            }
        }
        server.start()
        defer { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
        var samples: [Int64] = []
        let line = Array("{\"id\":\"x\",\"cmd\":\"resolve\",\"taskID\":\"bench\"}\n".utf8)
        var reply = [UInt8](repeating: 0, count: 256)
        for index in 0..<(count + 100) {
            let started = DispatchTime.now().uptimeNanoseconds
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var target = sockaddr_in()
            target.sin_family = sa_family_t(AF_INET)
            target.sin_port = port
            inet_pton(AF_INET, "127.0.0.1", &target.sin_addr)
            _ = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            _ = write(fd, line, line.count)
            _ = read(fd, &reply, reply.count)
            close(fd)
            if index >= 100 { samples.append(Int64(DispatchTime.now().uptimeNanoseconds - started) / 1000) }
        }
        return Percentiles(samples)
    }
}
