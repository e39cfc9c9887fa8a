// libFuzzer harness for what keiji-bus does with the bytes a client sends: the line splitter (LineReader,
// over a real socket) and the request decoder (JSON → BusRequest → journal event). Built only by
// scripts/fuzz (KEIJI_FUZZ=1 swift build -sanitize=fuzzer).
import Foundation
import KeijiCore
import CFuzzDriver
import Foundation
@testable import KeijiBus

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A small line limit, so inputs of a few KiB reach the "too long" paths too.
private let lineLimit = 512

@main
enum BusRequestFuzzerMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in data.map { busRequestFuzzerInput($0, size) } ?? 0 })
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func busRequestFuzzerInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    for line in splitLines(input) { decode(line) }
    // The whole input as one line too: the decoder sees every byte, newlines included.
    decode(input)
    return 0
}

/// Feeds `input` through a socket pair into a LineReader and checks what it hands out against the input.
private func splitLines(_ input: [UInt8]) -> [[UInt8]] {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { fatalError("socketpair: \(errno)") }
    defer { close(fds[0]) }
    var size = Int32(max(input.count * 2, 4096))
    setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    var written = 0
    while written < input.count {
        let n = input.withUnsafeBytes { send(fds[1], $0.baseAddress! + written, input.count - written, Int32(MSG_NOSIGNAL)) }
        guard n > 0 else { fatalError("send: \(errno)") }
        written += n
    }
    close(fds[1])

    var reader = LineReader(fd: fds[0], limit: lineLimit)
    var lines: [[UInt8]] = []
    var consumed = 0
    while true {
        switch reader.next() {
        case .line(let line):
            precondition(!line.contains(UInt8(ascii: "\n")), "a line holds a newline")
            precondition(line.count <= lineLimit, "a line of \(line.count) bytes passed the \(lineLimit)-byte limit")
            precondition(Array(input[consumed..<(consumed + line.count)]) == line && input[consumed + line.count] == UInt8(ascii: "\n"),
                         "line \(lines.count) is not the input's next line")
            consumed += line.count + 1
            lines.append(line)
        case .tooLong:
            // Only when the input really has more than the limit before its next newline.
            let rest = input[consumed...]
            let next = rest.firstIndex(of: UInt8(ascii: "\n")).map { $0 - consumed } ?? rest.count
            precondition(next > lineLimit, "tooLong for a line of \(next) bytes")
            return lines
        case .closed:
            precondition(!input[consumed...].contains(UInt8(ascii: "\n")), "a complete line was never handed out")
            return lines
        }
    }
}

/// What the bus does with one line: decode, salvage the id on failure, describe the error, turn the request
/// into a journal event and validate it. Nothing here may trap; a decoded request re-encodes to itself.
private func decode(_ line: [UInt8]) {
    let request: BusRequest
    do {
        request = try BusWire.decode(BusRequest.self, line)
    } catch {
        _ = BusWire.salvageID(line)
        _ = BusWire.describe(error)
        return
    }
    let again = try? BusWire.decode(BusRequest.self, BusWire.encode(request))
    precondition(again == request, "a request does not survive its own encoding: \(request)")
    guard let event = try? request.event() else { return }
    let entry = JournalEntry(at: 0, event)
    if let bytes = try? entry.encoded() {
        precondition((try? JournalEntry.decode(bytes)) == entry, "a command event does not survive the journal's encoding")
    }
}
