import Foundation
import Testing

@testable import KeijiCore

struct QueryViewTests {
    func dump(_ view: QueryView) throws -> [[String?]] {
        let columns = "TaskId, Name, Description, Schedule, ScheduleInfo, LastExecutionTime, NextExecutionTime, LogPath, Slug, Type, Executable, IsRunning, IsQueued, IsError, IsDisabled, ErrorTxt, CreatedAt, UpdatedAt"
        return try view.database.rows("SELECT \(columns) FROM task_models ORDER BY Name")
            + view.database.rows("SELECT * FROM runs ORDER BY RunId")
            + view.database.rows("SELECT lsn FROM applied_lsn")
    }

    @Test func aRebuiltViewEqualsTheLiveOne() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let zone = TimeZone(identifier: "UTC")!
        try home.workspace.createSystemDirectories()
        let live = try QueryView(path: home.path + "/live.db", workspace: home.workspace, defaultTimeZone: zone)
        var state = SchedulerState()
        for (index, entry) in sampleHistory().enumerated() {
            Reducer.apply(entry, lsn: UInt64(index + 1), to: &state)
            try live.apply(touched: Set([entry.taskName].compactMap { $0 }), state: state)
        }
        let rebuilt = try QueryView(path: home.path + "/rebuilt.db", workspace: home.workspace, defaultTimeZone: zone)
        try rebuilt.rebuild(from: state)
        let liveRows = try dump(live)
        #expect(liveRows.count > 10)
        let rebuiltRows = try dump(rebuilt)
        #expect(liveRows.count == rebuiltRows.count)
        #expect(liveRows == rebuiltRows)
    }

    @Test func theSqlite3ToolReadsTheSeedColumns() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let path = home.path + "/keiji.db"
        var state = SchedulerState()
        for (index, entry) in sampleHistory().enumerated() { Reducer.apply(entry, lsn: UInt64(index + 1), to: &state) }
        let view = try QueryView(path: path, workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        try view.rebuild(from: state)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, "SELECT Name, Type, Schedule, IsDisabled FROM task_models ORDER BY Name;"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(output == "alpha|HMS|units:seconds,interval:20|0\ngamma|HMS|units:seconds,interval:60|0\n")
    }

    @Test func aDamagedViewIsSetAsideAndRebuilt() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let path = home.path + "/keiji.db"
        try Data("this is not a database, just damage".utf8).write(to: URL(fileURLWithPath: path))
        let (view, fresh) = try QueryView.openOrReset(path: path, workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        #expect(fresh && FileManager.default.fileExists(atPath: path + ".damaged"))
        #expect(try view.appliedLSN() == 0)
        let (_, again) = try QueryView.openOrReset(path: path, workspace: home.workspace, defaultTimeZone: TimeZone(identifier: "UTC")!)
        #expect(!again)
    }
}
