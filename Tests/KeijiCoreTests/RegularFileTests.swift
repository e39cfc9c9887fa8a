import Foundation
import Testing

@testable import KeijiCore
import KeijiJournal

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What a run can put where keiji reads a file: a FIFO is refused at once (opened blocking, one with no writer held
/// the reader for ever), a link is not followed unless asked, and a read takes at most its limit.
struct RegularFileTests {
    @Test func aFIFOIsRefusedAtOnceALinkIsNotFollowedAndAReadIsBounded() throws {
        let home = TemporaryHome()
        defer { home.remove() }
        let file = home.path + "/file"
        let link = home.path + "/link"
        let fifo = home.path + "/fifo"
        try Data("0123456789".utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
        #expect(mkfifo(fifo, 0o600) == 0)

        #expect(RegularFile.read(file, limit: 4) == .success(Array("0123".utf8)))
        #expect(RegularFile.read(home.path + "/none", limit: 4) == .failure(.absent))
        guard case .failure(.notRegular(let linkMode)) = RegularFile.read(link, limit: 4),
              case .failure(.notRegular(let fifoMode)) = RegularFile.read(fifo, limit: 4) else {
            Issue.record("a link and a FIFO are not read")
            return
        }
        #expect(FileKind.described(linkMode) == "a symbolic link" && FileKind.described(fifoMode) == "a FIFO")
        #expect(RegularFile.read(link, limit: 64, followLinks: true) == .success(Array("0123456789".utf8)))
        #expect(throws: KeijiError.self) { try FileSystem.read(fifo) }
        #expect(String(decoding: try FileSystem.read(link), as: UTF8.self) == "0123456789", "settings may be a link")
    }
}
