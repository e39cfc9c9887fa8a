import Foundation
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What a `--build` leaves in `~/.keiji/exec/tasks` when it fails or meets a delete, on real task builds (see
/// `WalkthroughTests`).
struct SwiftTaskBuildTests {
    typealias Session = WalkthroughTests.Session

    func write(_ text: String, task: String, file: String, in s: Session) throws {
        try text.write(toFile: s.home + "/keiji/tasks/\(task)/\(file)", atomically: true, encoding: .utf8)
    }

    func build(_ task: String, _ flags: String..., in s: Session) async throws -> Session.Result {
        try await s.run(["task", "--name=\(task)", "--build"] + flags)
    }

    func binaries(in s: Session) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: s.home + "/.keiji/exec/tasks")) ?? []).sorted()
    }

    /// A failed build left a `<task>.keiji-previous-<pid>` link each time (its rollback renamed a link over another
    /// name of the same file, which does nothing), and `--delete` left them.
    @Test func aFailedBuildLeavesTheBinariesAsTheyWere() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        #expect(try await s.keiji("task", "--create", "--name=alpha", "--desc=a").status == 0)
        var r = try await build("alpha", in: s)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(binaries(in: s) == ["alpha"])

        let function = s.home + "/keiji/tasks/alpha/function.swift"
        let good = try String(contentsOfFile: function, encoding: .utf8)
        try write("func function() async throws { undefinedCall() }\n", task: "alpha", file: "function.swift", in: s)
        r = try await build("alpha", in: s)
        #expect(r.status == 1 && r.stderr.hasSuffix("error: swift build failed for task alpha (exit 1); see the compiler output above\n"), "\(r.stderr)")
        #expect(binaries(in: s) == ["alpha"])
        // Refused after the compile, for its schedule.
        try write("import KeijiTaskKit\nlet schedule = Schedule.every(0).seconds\n", task: "alpha", file: "schedule.swift", in: s)
        try write(good, task: "alpha", file: "function.swift", in: s)
        r = try await build("alpha", in: s)
        #expect(r.status == 1 && r.stderr.contains("error: alpha's schedule or policies are invalid:"), "\(r.stderr)")
        #expect(binaries(in: s) == ["alpha"])

        // What a killed build leaves goes with the task's delete.
        for name in ["alpha", "alpha.keiji-previous-99999", "alpha.tmp-99999"] {
            FileManager.default.createFile(atPath: s.home + "/.keiji/exec/tasks/" + name, contents: Data("x".utf8))
        }
        r = try await s.keiji("task", "--delete", "--name=alpha")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(binaries(in: s) == [])
    }
}
