import ArgumentParser
import Foundation
import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Output for people: results on stdout, progress and errors on stderr, colours only on a terminal.
enum Console {
    static let colours = isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil

    static func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    /// Many lines in one write: a table of 10,000 tasks written a line at a time was 10,000 system calls.
    static func say(lines: [String]) {
        guard !lines.isEmpty else { return }
        say(lines.joined(separator: "\n"))
    }

    /// Lines as bytes, each followed by a newline, in one write: a task's log as it wrote it (`--get` shows text through `VisibleText`).
    static func say(byteLines lines: [ArraySlice<UInt8>]) {
        guard !lines.isEmpty else { return }
        var out: [UInt8] = []
        out.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
        for line in lines {
            out += line
            out.append(UInt8(ascii: "\n"))
        }
        fflush(nil)  // after what `say` printed before
        _ = out.withUnsafeBytes { FileSystem.writeAll($0, to: STDOUT_FILENO) }
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

    static func progress(_ line: String) { FileHandle.standardError.write(Data((paint(line, 33) + "\n").utf8)) }

    /// `error: <message>` on stderr, the one line every failure prints.
    static func error(_ message: String) { FileHandle.standardError.write(Data((paint("error:", 31) + " " + message + "\n").utf8)) }

    static func paint(_ text: String, _ code: Int) -> String { colours ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
}

/// A failure the CLI reports as one line and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Runs a command body, turning any error into `error: <reason>` on stderr and exit status 1 (thrown as
/// `ExitCode.failure`, so that `Keiji.main` ends the call's database session before it exits).
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CleanExit {
        throw error
    } catch let error as ExitCode {
        throw error
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
