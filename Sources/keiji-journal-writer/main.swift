// keiji-journal-writer: the process the kill -9 test runs and kills.
//
//   keiji-journal-writer <journal dir> <ack file> <iteration> <producers> <sync|interval|none> <segment bytes>
//
// Opens the journal (recovering whatever the last kill left), then appends forever from <producers>
// concurrent tasks. Each record says who wrote it ("i<iteration>p<producer>s<sequence>:" + filler derived
// from those numbers), so the test can tell a real record from an invented one. After each append returns,
// "<lsn> <iteration> <producer> <sequence>" is appended to the ack file: a line there means "durable".
// Producer 0 also checkpoints and compacts now and then, so kills land inside those too.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import KeijiJournal

let arguments = CommandLine.arguments
guard arguments.count == 7, let iteration = Int(arguments[3]), let producers = Int(arguments[4]),
    let segmentSize = Int(arguments[6])
else {
    fputs("usage: keiji-journal-writer <dir> <ack file> <iteration> <producers> <sync|interval|none> <segment bytes>\n", stderr)
    exit(64)
}

var options = JournalOptions()
options.segmentSize = segmentSize
options.retention = .init(segments: 1)
options.durability = switch arguments[5] {
case "interval": .interval(milliseconds: 5)
case "none": .none
default: .sync
}

let journal: Journal
do {
    journal = try Journal.open(directory: arguments[1], options: options)
} catch {
    fputs("error: \(error)\n", stderr)
    exit(2)
}

let ackFile = open(arguments[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
guard ackFile >= 0 else { exit(3) }

/// Writes one line with a single write(2): lines from concurrent producers never interleave.
func acknowledge(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(10)
    _ = bytes.withUnsafeBytes { write(ackFile, $0.baseAddress, $0.count) }
}

/// The record a producer writes at a sequence number; the test regenerates it to check the bytes.
func record(iteration: Int, producer: Int, sequence: Int) -> [UInt8] {
    var bytes = Array("i\(iteration)p\(producer)s\(sequence):".utf8)
    let length = (sequence * 7919 + producer * 104_729) % 600
    for index in 0..<length { bytes.append(UInt8(truncatingIfNeeded: 65 + (index + sequence) % 26)) }
    return bytes
}

await withTaskGroup(of: Void.self) { group in
    for producer in 0..<producers {
        group.addTask {
            var sequence = 0
            while true {
                do {
                    let lsn = try await journal.append(record(iteration: iteration, producer: producer, sequence: sequence))
                    acknowledge("\(lsn) \(iteration) \(producer) \(sequence)")
                    sequence += 1
                    if producer == 0 && sequence % 300 == 0 {
                        try await journal.writeCheckpoint(Array("through \(lsn)".utf8), at: lsn)
                        try await journal.compact()
                    }
                } catch {
                    fputs("error: \(error)\n", stderr)
                    exit(4)
                }
            }
        }
    }
}
