import Testing

@testable import KeijiJournal

/// Every truncation point and every flipped bit of a small segment: recovery never crashes, never returns a
/// record that was not appended, tells a torn tail from corruption, and a second open changes nothing.
/// Each runs on a segment written plainly and on one the writer filled with zeros ahead (512 bytes at a
/// time), where the zeros after the last frame are unused space and any other byte there is a torn tail.
struct TruncationAndBitFlipTests {
    static let preallocations = [0, 512]

    /// The fixture, checked to have the shape the variant is about.
    func fixture(preallocation: Int) async throws -> SegmentFixture {
        let fixture = try await SegmentFixture.make(preallocation: preallocation)
        #expect(fixture.frames.count == 6, "five batches and the clean-close note")
        let zeros = fixture.bytes.count - fixture.frames.last!.end
        #expect(preallocation == 0 ? zeros == 0 : zeros > 0, "zeros after the last frame: \(zeros)")
        return fixture
    }

    @Test(arguments: preallocations) func truncationAtEveryByteOffset(preallocation: Int) async throws {
        let fixture = try await fixture(preallocation: preallocation)
        for cut in 0...fixture.bytes.count {
            let fs = fixture.fileSystem(with: Array(fixture.bytes.prefix(cut)))
            if cut < SegmentHeader.size {
                // A header page is synced before the file is renamed into place: a short one is damage, not a crash.
                await #expect(throws: JournalError.self, "cut at \(cut)") { try await openAndRead(fs) }
                let (info, lsns) = try await openAndRead(fs, mode: .pointInTime)
                #expect(lsns.isEmpty && !info.isClean)
                continue
            }
            let (info, lsns) = try await openAndRead(fs)
            #expect(lsns == fixture.lsnsBefore(cut), "cut at \(cut): exactly the complete frames survive")
            let tornInside = fixture.frames.contains { $0.start < cut && cut < $0.payloadEnd }
            #expect(info.repairs.map(\.kind) == (tornInside ? [.tornTailTruncated] : []), "cut at \(cut)")
            let (again, lsnsAgain) = try await openAndRead(fs)
            #expect(again.isClean && lsnsAgain == lsns, "cut at \(cut): a second open is a no-op")
        }
    }

    @Test(arguments: preallocations) func everyFlippedBitIsDetectedAndClassified(preallocation: Int) async throws {
        let fixture = try await fixture(preallocation: preallocation)
        let last = fixture.frames.last!
        var corruptions = 0
        var tornTails = 0
        for byte in SegmentHeader.size..<fixture.bytes.count {
            for bit in 0..<8 {
                var damaged = fixture.bytes
                damaged[byte] ^= 1 << bit
                let fs = fixture.fileSystem(with: damaged)
                if byte >= last.start {
                    // The clean-close note is the last frame: no later frame vouches for it, and it holds no
                    // records, so it is cut as a torn tail and every record survives. So is a bit set in the
                    // zeros after it: not a frame, not unused space.
                    let (info, lsns) = try await openAndRead(fs)
                    #expect(lsns == Array(1...fixture.lastLSN), "flip at \(byte).\(bit)")
                    #expect(info.repairs.map(\.kind) == [.tornTailTruncated], "flip at \(byte).\(bit)")
                    tornTails += 1
                } else {
                    // Inside a batch that a later synced frame vouches for: corruption of acknowledged data.
                    do {
                        _ = try await openAndRead(fs)
                        Issue.record("flip at \(byte).\(bit) in an acknowledged frame was not refused")
                    } catch {
                        #expect(isCorruption(error), "flip at \(byte).\(bit): \(error)")
                        corruptions += 1
                    }
                    // pointInTime keeps exactly the frames before the damaged one, and converges.
                    let frame = try #require(fixture.frame(containing: byte))
                    let (info, lsns) = try await openAndRead(fs, mode: .pointInTime)
                    #expect(lsns == fixture.lsnsBefore(frame.start), "flip at \(byte).\(bit)")
                    #expect(info.repairs.contains { $0.kind == .corruptionTruncated })
                    let (again, _) = try await openAndRead(fs)
                    #expect(again.isClean, "flip at \(byte).\(bit): recovery converges")
                }
            }
        }
        #expect(corruptions > 0 && tornTails > 0)
    }

    @Test func everyHeaderByteIsProtected() async throws {
        let fixture = try await SegmentFixture.make()
        for byte in 0..<SegmentHeader.size {
            var damaged = fixture.bytes
            damaged[byte] ^= 0xA5
            let fs = fixture.fileSystem(with: damaged)
            await #expect(throws: JournalError.self, "header byte \(byte)") { try await openAndRead(fs) }
        }
    }
}
