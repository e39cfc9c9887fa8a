import ArgumentParser
import Foundation
import KeijiCore
import KeijiJournal
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Output for people: results on stdout, progress and errors on stderr, colours only on a terminal.
///
/// Every write is a plain `write(2)` loop. Foundation's `FileHandle.write` ended the CLI with a fatal error (SIGILL,
/// exit 132) when stderr was closed or full, half way through a `system --stop`; and `print` dropped stdout's errors,
/// so `task --get --json > file` on a full disk exited 0 with the file cut short. Now a failed write to stderr is
/// dropped (there is nowhere to say so) and the command goes on; a failed write to stdout is remembered and the call
/// ends with `error: write error: <reason>` and status 1 (``end(_:)``), as coreutils' `close_stdout` does.
enum Console {
    /// Not for `TERM=dumb` (Emacs' shell and compile buffers), which showed the escapes as text, as `ls` and `git` do not.
    static let colours = isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        && ProcessInfo.processInfo.environment["TERM"] != "dumb"

    /// The errno of the first write to stdout that failed.
    private static let stdoutFailure = Mutex<Int32?>(nil)

    static var stdoutFailed: Bool { stdoutFailure.withLock { $0 != nil } }

    /// Puts `/dev/null`, opened read-only, on any of descriptors 0, 1 and 2 that is closed, first thing: else the
    /// next file opened (a journal segment, a lock file) took that number and an error line was written into it.
    /// Read-only, a write to it still fails (EBADF), as on the closed descriptor, and is reported as such.
    static func holdStandardDescriptors() {
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let null = open("/dev/null", O_RDONLY)
            if null >= 0, null != fd {
                dup2(null, fd)
                close(null)
            }
        }
    }

    static func say(_ line: String) {
        write(line + "\n", to: STDOUT_FILENO)
    }

    /// `text` with no newline after it: a question whose answer is typed on the same line.
    static func ask(_ text: String) {
        write(text, to: STDOUT_FILENO)
    }

    /// Many lines in one write: a table of 10,000 tasks written a line at a time was 10,000 system calls.
    static func say(lines: [String]) {
        guard !lines.isEmpty else { return }
        say(lines.joined(separator: "\n"))
    }

    /// Lines as bytes, each followed by a newline, about a `batch` or one long line a `write`: a task's log as it wrote
    /// it (`--get` shows text through `VisibleText`). Joined into one write, a 256 MiB tail was held twice.
    static func say(byteLines lines: [ArraySlice<UInt8>], batch: Int = 1 << 20, write: (ArraySlice<UInt8>) -> Void = say(bytes:)) {
        var out: [UInt8] = []
        out.reserveCapacity(batch)
        func flush() {
            if !out.isEmpty { write(out[...]) }
            out.removeAll(keepingCapacity: true)
        }
        for line in lines where !stdoutFailed {
            if line.count >= batch {
                flush()
                write(line)
            } else {
                out += line
            }
            out.append(UInt8(ascii: "\n"))
            if out.count >= batch { flush() }
        }
        flush()
    }

    /// Bytes on stdout as they are (a task's log).
    static func say(bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { write($0, to: STDOUT_FILENO) }
    }

    /// `object` as JSON, pretty and with sorted keys, for `--json`; an empty list as `[]` (Foundation's pretty form
    /// of one was `[`, an empty line and `]` for some lists).
    static func say(json object: Any) throws {
        if let list = object as? [Any], list.isEmpty { return say("[]") }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        say(String(decoding: data, as: UTF8.self))
    }

    /// One line per repair this process's open of the journal made, on stderr: the files changed, whatever the
    /// command then does; the journal keeps them for the scheduler's next recovery report too.
    static func journalRepaired(_ repairs: [Repair]) {
        for repair in repairs { progress("warning: journal repaired: \(repair) (the next scheduler start reports it)") }
    }

    static func progress(_ line: String) { write(paint(line, 33) + "\n", to: STDERR_FILENO) }

    /// Whether stdout is a pipe or socket whose reader has gone, taken as a write into it is (SIGPIPE, or EPIPE
    /// remembered for ``end(_:)``), as `tail -f` does: `--follow` of a log nothing was written to noticed a closed
    /// pipe only at its next write, and `keiji task --logs --follow | head -1` waited for the task's next line.
    static func readerGone() -> Bool {
        var info = stat()
        guard fstat(STDOUT_FILENO, &info) == 0, info.st_mode & S_IFMT == S_IFIFO || info.st_mode & S_IFMT == S_IFSOCK else { return false }
        var descriptor = pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)
        guard poll(&descriptor, 1, 0) == 1, descriptor.revents & Int16(POLLERR | POLLHUP) != 0 else { return false }
        raise(SIGPIPE)
        stdoutFailure.withLock { if $0 == nil { $0 = EPIPE } }
        return true
    }

    /// `error: <message>` on stderr, the one line every failure prints.
    static func error(_ message: String) { write(paint("error:", 31) + " " + message + "\n", to: STDERR_FILENO) }

    /// Ends the process with `status`, or, when a write to stdout failed, with `error: write error: <reason>` and
    /// status 1 (a failure's own status stays): what was asked may be done (a mutating command's change stays
    /// made), but its output is lost or cut short. A write into a closed pipe with SIGPIPE at its default never
    /// gets here: the signal ended the process, as it ends `cat`. An interrupt a restart held back ends it here.
    static func end(_ status: Int32) -> Never {
        if let failure = stdoutFailure.withLock({ $0 }) {
            error("write error: \(String(cString: strerror(failure)))")
        }
        HeldInterrupts.endIfOneWasHeld()
        exit(stdoutFailed && status == 0 ? 1 : status)
    }

    private static func write(_ text: String, to fd: Int32) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0), to: fd) }
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32) {
        guard !bytes.isEmpty, !FileSystem.writeAll(bytes, to: fd), fd == STDOUT_FILENO else { return }
        let code = errno
        stdoutFailure.withLock { if $0 == nil { $0 = code } }
    }

    static func paint(_ text: String, _ code: Int) -> String { colours ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
}

/// A failure the CLI reports as one line and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Runs a command body, turning any error into `error: <reason>` on stderr and exit status 1, or 75 for a command
/// whose fate is unknown (``CommandFateUnknown``): thrown as an `ExitCode`, so that `Keiji.main` ends the call's
/// database session before it exits.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CleanExit {
        throw error
    } catch let error as ExitCode {
        throw error
    } catch let error as CommandFateUnknown {
        Console.error(error.description)
        throw ExitCode(CommandFateUnknown.exitStatus)
    } catch let error as KeijiError where error.code == .databaseDamaged {
        throw failure(await ViewRepair.message(after: error))
    } catch let error as KeijiError {
        throw failure(error.message)
    } catch {
        throw failure("\(error)")
    }
}

/// Prints `error: <message>` and returns the exit status 1 to throw.
private func failure(_ message: String) -> ExitCode {
    Console.error(message)
    return .failure
}
