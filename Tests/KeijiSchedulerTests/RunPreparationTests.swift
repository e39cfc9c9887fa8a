import Foundation
import Synchronization
import KeijiCore
import Testing

@testable import KeijiScheduler

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What a run is prepared from: the direct-exec decision, the cached environment block, the cached log
/// descriptor.
struct RunPreparationTests {
    // MARK: - Direct exec or /bin/sh -c

    func definition(_ command: String) -> TaskDefinition {
        TaskDefinition(name: try! TaskName("t"), description: "d", action: .command(command), schedule: ScheduleSpec(.every(1, .minutes)),
                       policy: RunPolicy(), directory: "/tmp/t")
    }

    @Test(arguments: [
        ("true", ["true"]),
        ("/usr/bin/env  python3\t-u script.py", ["/usr/bin/env", "python3", "-u", "script.py"]),
        ("./run.sh --level=3 a,b x+y user@host 50% ~no", nil),
        ("./run.sh --level=3 a,b x+y user@host 50%", ["./run.sh", "--level=3", "a,b", "x+y", "user@host", "50%"]),
        ("printenv héllo wörld", ["printenv", "héllo", "wörld"]),
        ("false", ["false"]),
        ("sleep 0.5", ["sleep", "0.5"]),
        ("  rsync -a /src/ host:/dst/  ", ["rsync", "-a", "/src/", "host:/dst/"]),
    ] as [(String, [String]?)])
    func plainCommandsAreExecdDirectly(command: String, words: [String]?) {
        #expect(CommandWords.plainWords(command) == words)
        if let words {
            #expect(ExecPlan(.command(command)) == ExecPlan(program: words[0], arguments: words, searchPath: true))
            // `task --get` (the view's Executable) shows what is exec'd.
            #expect(definition(command).executableDescription == words.joined(separator: " "))
        }
    }

    @Test(arguments: [
        "", "   ", "echo 'quoted'", "echo \"quoted\"", "echo a\\ b", "echo $HOME", "echo `date`", "echo $(date)", "a | b", "a && b",
        "a; b", "a & b", "a > out", "a < in", "(a)", "ls *.txt", "ls file?", "ls [ab]", "ls ~", "cd /tmp", "exit 3",
        "export A=1", ". ./env.sh", "A=1 cmd", "if true", "a # comment", "! a", "{ a; }", "a\nb", "a\rb", "echo a^b",
        "source x", "exec cmd", "set -e", "time cmd", "while", "for x", "echo {a,b}", "chdir /tmp",
        // dash's builtins that are programs too: the shell runs its own (`echo -e a` prints `-e a`, `pwd` is logical).
        "echo -e a", "echo", "printf %s x", "test -f x", "kill -HUP 1", "pwd", "true --help", "false x",
    ])
    func anythingAShellWouldReadDifferentlyGoesToTheShell(command: String) {
        #expect(CommandWords.plainWords(command) == nil)
        #expect(ExecPlan(.command(command)) == ExecPlan(program: "/bin/sh", arguments: ["/bin/sh", "-c", command], searchPath: false))
        #expect(definition(command).executableDescription == "/bin/sh -c " + command)
    }

    @Test func aBinaryTaskRunsItsProgramWithRun() {
        #expect(ExecPlan(.binary(path: "/home/u/keiji/tasks/t/.build/t")) ==
                ExecPlan(program: "/home/u/keiji/tasks/t/.build/t", arguments: ["/home/u/keiji/tasks/t/.build/t", "--run"], searchPath: false))
    }

    // MARK: - Environment block

    /// A `.env` another user may write is refused (``TrustedFile``), cached or not: its variables run as the owner. A
    /// group of the owner's own may write (``PrivateGroup``); a group with others in it, or none, may not.
    @Test func aDotEnvOthersOrAnotherGroupMayWriteIsRefusedCachedOrNot() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/.env"
        let environments = TaskEnvironments(base: ["PATH": "/usr/bin"])
        try FileSystem.writeAtomically(Data("LD_PRELOAD=/tmp/x.so\n".utf8), to: path, mode: 0o600)
        #expect(try environments.block(forTaskDirectory: directory).keys == ["PATH", "LD_PRELOAD"])
        chmod(path, 0o606)
        #expect { try environments.block(forTaskDirectory: directory) } throws: { error in
            (error as? KeijiError)?.message == "\(path) is mode 0606, writable by others, who could make keiji run their code as you: chmod go-w \(path)"
        }
        chmod(path, 0o660)
        if PrivateGroup.isPrivate(getegid(), to: geteuid()) {
            #expect(try environments.block(forTaskDirectory: directory).keys == ["PATH", "LD_PRELOAD"])
        } else {
            #expect(throws: KeijiError.self) { try environments.block(forTaskDirectory: directory) }
        }
        if geteuid() == 0 {
            #expect(chown(path, geteuid(), 65534) == 0)  // nogroup: nobody's primary group, members or none
            #expect { try environments.block(forTaskDirectory: directory) } throws: { error in
                let message = (error as? KeijiError)?.message ?? ""
                return message.hasPrefix("\(path) is mode 0660, writable by its group ") && message.contains("(gid 65534), which has other members")
            }
        }
        chmod(path, 0o600)
        #expect(try environments.block(forTaskDirectory: directory).keys == ["PATH", "LD_PRELOAD"])
    }

    @Test func theEnvironmentIsReadOnceAndAgainWhenTheDotEnvChanges() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environments = TaskEnvironments(base: ["PATH": "/usr/bin", "HOME": "/home/u", "KEIJI_RUN_ID": "inherited"])
        #expect(try environments.block(forTaskDirectory: directory).keys == ["HOME", "PATH"], "no .env: the scheduler's own, no per-run keys")
        #expect(environments.dotEnvReads == 0)

        try "GREETING=hello\nKEIJI_SLOT=nope\n".write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        let first = try environments.block(forTaskDirectory: directory)
        #expect(first.keys == ["HOME", "PATH", "GREETING"])
        #expect(try environments.block(forTaskDirectory: directory) == first)
        #expect(environments.dotEnvReads == 1, "an unchanged .env is not read again")

        // A new value of the same size in place (same inode): the change time and mtime still tell. (The pause
        // lets a coarse file-system clock tick; it is not a timing assertion.)
        usleep(20_000)
        let handle = try #require(FileHandle(forWritingAtPath: directory + "/.env"))
        try handle.write(contentsOf: Data("GREETING=hallo\nPATH=/opt/bin\n".utf8))
        try handle.close()
        let second = try environments.block(forTaskDirectory: directory)
        #expect(environments.dotEnvReads == 2)
        #expect(second.keys == ["GREETING", "HOME", "PATH"], "an overridden key appears once")
        #expect(String(decoding: second.bytes, as: UTF8.self).contains("PATH=/opt/bin\0") && String(decoding: second.bytes, as: UTF8.self).contains("GREETING=hallo\0"))
    }

    /// A `.env` deleted and made anew (as `rm` and a rewrite, or some deploy scripts, do) can go between the stat and
    /// the open: that run gets the environment without it, as one a moment earlier would, and never an error (which
    /// put the task in error). A thread replaces the file over and over while the blocks are taken: without the fix
    /// some of the 20,000 calls threw "No such file or directory".
    @Test func aDotEnvReplacedByDeleteThenCreateIsNeverAnError() async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/.env"
        let environments = TaskEnvironments(base: ["PATH": "/usr/bin"])
        let stop = Atomic<Bool>(false), stopped = Atomic<Bool>(false)
        let replacer = Thread {
            while !stop.load(ordering: .relaxed) {
                unlink(path)
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                if fd >= 0 { _ = write(fd, "VERSION=1\n", 10); close(fd) }
            }
            stopped.store(true, ordering: .relaxed)
        }
        replacer.start()
        var failure: (any Error)?
        for _ in 0..<20_000 where failure == nil {
            do { _ = try environments.block(forTaskDirectory: directory) } catch { failure = error }
        }
        stop.store(true, ordering: .relaxed)
        while !stopped.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(1)) }
        #expect(failure == nil, "a .env replaced by delete-then-create is no error: \(failure.map { "\($0)" } ?? "")")
        try "VERSION=2\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try environments.block(forTaskDirectory: directory).keys.contains("VERSION"), "the file is read once it is there again")
    }

    /// The base is the scheduler's user, locale, zone, temporary folder and PATH, with a PATH of its own when the scheduler
    /// has none (started by `env -i`, its runs found no program by name); the rest of the starter's shell is left out.
    @Test func theBaseEnvironmentIsAnAllowListWithAPath() {
        let scheduler = ["HOME": "/home/u", "USER": "u", "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC", "PGPASSWORD": "sekrit",
                         "DB_URL": "postgres://u:hunter2@db/k", "OLDPWD": "/x", "TERM": "xterm", "SHLVL": "2", "_": "/usr/bin/keiji"]
        #expect(TaskEnvironments.inherited(from: scheduler) == ["HOME": "/home/u", "USER": "u", "LANG": "C.UTF-8", "LC_TIME": "C", "TZ": "UTC",
                                                                "PATH": "/usr/local/bin:/usr/bin:/bin"])
        #expect(TaskEnvironments.inherited(from: ["PATH": "/opt/bin"]) == ["PATH": "/opt/bin"])
    }

    /// A `.env`'s mistakes are said once per change of the file (the engine writes the line into the task's log), the
    /// first three and how many more; a sound file says nothing.
    @Test func aDotEnvsMistakesAreSaidOncePerChange() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environments = TaskEnvironments(base: ["PATH": "/usr/bin"])
        var warnings: [String] = []
        try "API_KEY=\"oops\nNEXT=1\n".write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        #expect(try environments.block(forTaskDirectory: directory) { warnings.append($0) }.keys == ["PATH", "API_KEY", "NEXT"])
        _ = try environments.block(forTaskDirectory: directory) { warnings.append($0) }
        #expect(warnings == ["\(directory)/.env line 1: a quote is not closed: the value ends with the line"])

        try "GOOD=1\nBROKEN LINE\nA=1 b\nC-D=1\nE=\"\n".write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        _ = try environments.block(forTaskDirectory: directory) { warnings.append($0) }
        #expect(warnings.count == 2 && warnings.last == "\(directory)/.env line 2: not KEY=value: skipped; "
                + "line 3: text after the value is not part of it (quote a value with spaces): ignored; "
                + "line 4: the name before '=' is not a variable name (letters, digits and '_', not starting with a digit): skipped; and 1 more",
                "\(warnings)")

        try "GOOD=1\n".write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        _ = try environments.block(forTaskDirectory: directory) { warnings.append($0) }
        #expect(warnings.count == 2 && environments.dotEnvReads == 3)
    }

    /// A `.env` is bounded by what its variables take, as a run is: one over the spawn request's limit in comments and
    /// keys set again starts (refused by its size, it "could never start" though its environment was 11 bytes), one
    /// whose variables take more is refused naming the file, and a file over ``DotEnv/fileLimit`` is refused
    /// by its size, unread (parsed on the engine, a 66 MB file held every task for 10 s).
    @Test func aDotEnvIsBoundedByWhatItsVariablesTake() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environments = TaskEnvironments(base: ["PATH": "/usr/bin"])
        let comments = (0..<4000).map { "# comment line \($0): lorem ipsum dolor sit amet consectetur adipiscing elit\n" }.joined()
        let again = (0..<3000).map { _ in "V=" + String(repeating: "x", count: 100) + "\n" }.joined()
        try ("GREETING=hi\n" + comments + again).write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        #expect(try environments.block(forTaskDirectory: directory).keys == ["PATH", "GREETING", "V"])

        let text = (0..<3000).map { "V\($0)=" + String(repeating: "x", count: 100) + "\n" }.joined()
        try text.write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        #expect(throws: KeijiError(.spawn, "the variables in \(directory)/.env take \(text.utf8.count) bytes; a run's arguments and environment may take at most 262144")) {
            try environments.block(forTaskDirectory: directory)
        }

        let huge = String(repeating: "#" + String(repeating: "c", count: 1023) + "\n", count: 1025)
        try huge.write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        #expect(throws: KeijiError(.spawn, "\(directory)/.env is \(huge.utf8.count) bytes; a .env may be at most 1048576")) {
            try environments.block(forTaskDirectory: directory)
        }
        // `--build` reads it with the same bound (it read any size, whole).
        #expect(throws: KeijiError(.io, "\(directory)/.env is \(huge.utf8.count) bytes; a .env may be at most 1048576")) {
            try DotEnv.load(directory + "/.env")
        }
    }

    /// A `.env` that is a FIFO (a run can make one there) is refused as one, by a run and by `--build` alike: opened
    /// without blocking and read, it read as empty, and a run went ahead without its variables.
    @Test func aDotEnvThatIsAFIFOIsRefusedNotReadAsEmpty() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(mkfifo(directory + "/.env", 0o600) == 0)
        let reason = "cannot read \(directory)/.env: it is a FIFO, not a file"
        #expect(throws: KeijiError(.spawn, reason)) { try TaskEnvironments(base: ["PATH": "/usr/bin"]).block(forTaskDirectory: directory) }
        #expect(throws: KeijiError(.io, reason)) { try DotEnv.load(directory + "/.env") }
    }

    /// One variable over the kernel's per-string limit is refused naming it and the file: `execve` said only "Argument
    /// list too long".
    @Test func aVariableOverTheKernelsLimitIsNamed() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-env-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environments = TaskEnvironments(base: ["PATH": "/usr/bin"])
        try ("SMALL=1\nT_BIG=" + String(repeating: "x", count: 131_065) + "\n").write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        #expect(try environments.block(forTaskDirectory: directory).keys == ["PATH", "SMALL", "T_BIG"], "131072 bytes with its name and NUL: passed")
        try ("SMALL=1\nT_BIG=" + String(repeating: "x", count: 131_066) + "\n").write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        #expect(throws: KeijiError(.spawn, "T_BIG in \(directory)/.env takes 131073 bytes; Linux passes at most 131072 bytes per variable (NAME=value and its NUL)")) {
            try environments.block(forTaskDirectory: directory)
        }
        #expect(TaskEnvironments.sizeLimit == RunSize.total, "a save holds a task to the spawn request's limit (RunSize)")
    }

    // MARK: - Log descriptor

    @Test func theLogStaysOpenBetweenRunsAndIsReopenedWhenReplacedOrRotated() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-logs-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let task = try TaskName("logged")
        let log = LogFile(directory: directory, baseName: "logged", rotate: true, maxSize: 100)
        let logs = TaskLogDescriptors()
        let first = try logs.checkOut(log, task: task, othersWriting: false)
        LogFile.write(first, "one\n")
        logs.checkIn(first)
        let again = try logs.checkOut(log, task: task, othersWriting: false)
        #expect(again == first, "the same descriptor serves the next run")
        logs.checkIn(again)
        #expect(logs.openCount == 1)

        // Removed (keiji task --delete, then a new task of the same name): a new file, not the unlinked one.
        try FileManager.default.removeItem(atPath: log.activePath)
        #expect(FileManager.default.createFile(atPath: log.activePath, contents: nil))
        let reopened = try logs.checkOut(log, task: task, othersWriting: false)
        LogFile.write(reopened, String(repeating: "x", count: 150) + "\n")
        logs.checkIn(reopened)
        #expect(try String(contentsOfFile: log.activePath, encoding: .utf8).hasPrefix("xxx"))
        #expect(logs.openCount == 1, "the old descriptor was closed")

        // Over the size limit: not rotated while another run writes, rotated when this is the only run.
        let busy = try logs.checkOut(log, task: task, othersWriting: true)
        logs.checkIn(busy)
        #expect(try log.lastLines(10).count == 1 && (try FileManager.default.contentsOfDirectory(atPath: directory)).count == 1)
        let rotated = try logs.checkOut(log, task: task, othersWriting: false)
        LogFile.write(rotated, "after rotation\n")
        logs.checkIn(rotated)
        #expect(try String(contentsOfFile: log.activePath, encoding: .utf8) == "after rotation\n", "writes go to the new active file")
        #expect(try log.lastLines(2) == [String(repeating: "x", count: 150), "after rotation"])

        logs.forget(task)
        #expect(logs.openCount == 0)
    }

    /// A task whose runs overlap without pause always has a run going at a start: its log was never rotated, and grew
    /// without bound. At twice its size it is rotated under the runs: one still going writes on into the rolled file,
    /// which stays plain until that run is checked in, then is compressed with its last lines.
    @Test func aLogOverlappingRunsKeepWritingIsRotatedAtTwiceItsSize() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-logs-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let task = try TaskName("overlapping")
        let log = LogFile(directory: directory, baseName: "overlapping", rotate: true, maxSize: 1024)
        let logs = TaskLogDescriptors()
        let files = { ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() }
        let first = try logs.checkOut(log, task: task, othersWriting: false)
        LogFile.write(first, String(repeating: "a", count: 1500) + "\n")
        let second = try logs.checkOut(log, task: task, othersWriting: true)
        #expect(second == first && files() == ["overlapping.log"], "over the size, under twice it: not rotated under a run")
        LogFile.write(second, String(repeating: "b", count: 700) + "\n")
        logs.checkIn(first)
        let third = try logs.checkOut(log, task: task, othersWriting: true)
        #expect(third != second && files() == ["overlapping.000001.log", "overlapping.log"], "rotated, kept plain while written")
        LogFile.write(second, "second's last line\n")
        LogFile.write(third, "third\n")
        logs.checkIn(second)
        #expect(files() == ["overlapping.000001.log.lz4", "overlapping.log"], "compressed once no run writes it")
        #expect(try log.lastLines(2) == ["second's last line", "third"])
        logs.checkIn(third)
        logs.forget(task)
    }

    @Test func idleDescriptorsAreBounded() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-logs-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = TaskLogDescriptors(capacity: 8)
        for index in 0..<40 {
            let log = LogFile(directory: directory + "/\(index)", baseName: "t\(index)", rotate: false, maxSize: 1 << 20)
            logs.checkIn(try logs.checkOut(log, task: try TaskName("t\(index)"), othersWriting: false))
            #expect(logs.openCount <= 8)
        }
    }

    /// A log that would get a descriptor at the ceiling is refused and closed: a scheduler that ran out of
    /// descriptors was killed by libdispatch (SIGILL), whose thread monitor must still open /proc files.
    @Test func aLogPastTheDescriptorCeilingIsRefusedAndClosed() throws {
        let directory = FileManager.default.temporaryDirectory.path + "/keiji-logs-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = LogFile(directory: directory, baseName: "t", rotate: false, maxSize: 1 << 20)
        let full = TaskLogDescriptors(capacity: 8, ceiling: 0)  // every number is at or past it
        #expect(throws: KeijiError.self) { try full.checkOut(log, task: try TaskName("t"), othersWriting: false) }
        #expect(full.openCount == 0)
        do {
            _ = try full.checkOut(log, task: try TaskName("t"), othersWriting: false)
        } catch let error as KeijiError {
            #expect(error.message.hasPrefix("the scheduler is at its descriptor limit") && error.message.hasSuffix("t's log was not opened"), "\(error)")
            #expect(error.code == .outOfResources, "momentary: the run puts its task in no error")
        }
        // Past the ceiling the idle logs kept open are closed first, and the run is refused only if that is not enough.
        let cached = TaskLogDescriptors(capacity: 8, ceiling: Int.max)
        for index in 0..<3 {
            let other = LogFile(directory: directory + "/\(index)", baseName: "o\(index)", rotate: false, maxSize: 1 << 20)
            cached.checkIn(try cached.checkOut(other, task: try TaskName("o\(index)"), othersWriting: false))
        }
        #expect(cached.openCount == 3)
        cached.ceiling.store(0, ordering: .relaxed)
        #expect(throws: KeijiError.self) { try cached.checkOut(log, task: try TaskName("t"), othersWriting: false) }
        #expect(cached.openCount == 0, "the idle descriptors were closed before the refusal")
        let roomy = TaskLogDescriptors(capacity: 8, ceiling: Int.max)
        roomy.checkIn(try roomy.checkOut(log, task: try TaskName("t"), othersWriting: false))
        #expect(roomy.openCount == 1)
        roomy.forget(try TaskName("t"))
    }
}
