import Foundation

/// Opens a journal directory's contents into a consistent state: removes leftovers, picks the newest valid
/// checkpoint, scans every segment, checks the chain between them, and repairs what the recovery mode allows.
///
/// The rule that separates a torn tail from corruption (after PAR, FAST'18): damage that no later frame
/// vouches for (by a `syncedThroughLSN` reaching it) and that sits in the last segment was never synced, so it
/// was never acknowledged in `sync` mode: it is quarantined and cut. Anything else is corruption of
/// acknowledged data: `strict` refuses, `pointInTime` cuts there, `salvage` cuts and re-appends what survived.
///
/// Recovery is idempotent and safe to interrupt: every step is a quarantine copy (synced) before a truncate,
/// or a rename followed by a directory sync, so running it again converges.
struct JournalRecovery {
    let io: any JournalIO
    let directory: String
    let options: JournalOptions

    /// Where recovery leaves the journal for the writer.
    struct Outcome {
        var info: RecoveryInfo
        var checkpoint: Checkpoint?
        /// Surviving segments, oldest first, with their scans.
        var segments: [SegmentScan]
        /// The last segment may be appended to (it is intact, unsealed and was not repaired).
        var tailIsAppendable: Bool
        /// Records recovered after a cut, to re-append under their LSNs (`salvage` only).
        var salvaged: [(lsn: UInt64, bytes: [UInt8])] = []
        /// The kept checkpoint's LSN when the cut fell before it: the writer skips the LSNs up to it.
        var bridgeThrough: UInt64?
        var highestSegmentID: UInt64
        /// Repairs earlier opens made that no recovery report has listed yet (``UnreportedRepair``).
        var earlierRepairs: [UnreportedRepair] = []
    }

    /// Recovers, and records every repair it makes in ``UnreportedRepairsFile`` (also when it then refuses), so
    /// the next recovery report lists it whichever process opened the journal.
    func run() throws -> Outcome {
        let earlier = try UnreportedRepairsFile.read(io: io, directory: directory)
        var info = RecoveryInfo(mode: options.recoveryMode)
        let process = ProcessInfo.processInfo.processName
        do {
            var outcome = try repair(&info)
            outcome.earlierRepairs = earlier
            // Best effort, as on a refusal: the repair is on disk already, so failing the open now (a full disk after
            // the crash that tore the tail) would leave nothing to repair next time and lose the record anyway. This
            // open's own caller still has the repairs (`recovery`) and says them.
            try? UnreportedRepairsFile.write(info.repairs.map {
                UnreportedRepair(repair: $0, openedAtNanoseconds: options.now(), mode: options.recoveryMode, process: process, openRefused: false)
            }, after: earlier, io: io, directory: directory)
            return outcome
        } catch {
            // A refusal can follow repairs already on disk (a torn tail cut, a checkpoint set aside). A finding that
            // changed no file (segments missing) is found again by the next open, so it is not recorded twice.
            let made = info.repairs.filter { $0.kind != .missingSegments }
            guard !made.isEmpty else { throw error }
            try? UnreportedRepairsFile.write(made.map {
                UnreportedRepair(repair: $0, openedAtNanoseconds: options.now(), mode: options.recoveryMode, process: process, openRefused: true)
            }, after: earlier, io: io, directory: directory)
            guard let refusal = error as? JournalError else { throw error }
            throw JournalError(refusal.code, refusal.message + " Before refusing, this open repaired the journal: "
                               + made.map(\.description).joined(separator: "; ") + " (the next start's recovery report lists it).",
                               errno: refusal.errno)
        }
    }

    private func repair(_ info: inout RecoveryInfo) throws -> Outcome {
        let started = monotonicNanoseconds()
        let set = SegmentSet(io: io, directory: directory, naming: JournalSegmentNaming())
        let scanner = SegmentScanner()

        let entries = try io.listDirectory(directory)
        var removedTemporary = false
        for entry in entries where entry.hasSuffix(".tmp") && (entry.hasPrefix("seg-") || entry.hasPrefix("ckpt-")) {
            try io.remove(directory + "/" + entry)
            info.repairs.append(Repair(kind: .temporaryFileRemoved, file: entry, bytes: 0, detail: "left by an interrupted create or rename"))
            removedTemporary = true
        }
        if removedTemporary { try io.syncDirectory(directory) }

        var checkpoint = try loadCheckpoint(entries: entries, info: &info)
        info.checkpointLSN = checkpoint?.lsn

        let names = try set.list()
        var highestID = names.map(\.segmentID).max() ?? 0
        var kept: [SegmentScan] = []
        var lastWasRepaired = false
        var salvaged: [(lsn: UInt64, bytes: [UInt8])] = []

        var index = 0
        while index < names.count {
            let name = names[index]
            let isLast = index == names.count - 1
            let bytes = try io.readAll(set.path(of: name))
            let scan = scanner.scan(bytes, name: name)
            info.segmentsScanned += 1
            info.framesScanned += scan.frameCount
            info.recordsScanned += scan.recordCount

            // Where this segment stops being trustworthy, if anywhere: (offset, LSN expected there, why).
            var cut: (offset: Int, lsn: UInt64, why: String)?
            let expectedBase = kept.last?.nextLSN ?? (checkpoint.map { $0.lsn + 1 } ?? 1)
            if let problem = scan.headerProblem {
                cut = (0, kept.last?.nextLSN ?? name.baseLSN, problem)
            } else if let previous = kept.last, !scan.follows(previous) {
                cut = (0, previous.nextLSN, "does not follow \(previous.name.fileName) (missing, stale or reordered segment)")
            } else if kept.isEmpty, name.baseLSN > expectedBase {
                info.repairs.append(Repair(
                    kind: .missingSegments, file: name.fileName, bytes: 0,
                    lostLSNs: LSNRange(expectedBase...(name.baseLSN - 1)),
                    detail: "the journal starts at LSN \(name.baseLSN) but no checkpoint covers LSNs before it"))
                if options.recoveryMode == .strict {
                    throw JournalError(.corruption, "journal corruption in \(directory): segments holding LSNs \(expectedBase)…\(name.baseLSN - 1) are missing and no checkpoint covers them. Refusing to open in strict mode; open with recovery mode pointInTime or salvage to accept the loss.")
                }
            }

            if cut == nil, let damage = scan.damage {
                if damage.problem == .dataAfterSeal {
                    info.repairs.append(try cutTail(of: name, at: damage.offset, kind: .dataAfterSealTruncated,
                                                    lost: nil, detail: damage.problem.description))
                } else if isLast && !damage.isVouchedFor {
                    info.repairs.append(try cutTail(
                        of: name, at: damage.offset, kind: .tornTailTruncated,
                        lost: damage.claimedRange.map(LSNRange.init),
                        detail: "\(damage.problem); no later frame vouches for it, so it was never acknowledged in sync mode"))
                    lastWasRepaired = true
                } else {
                    cut = (damage.offset, damage.expectedLSN,
                           damage.problem.description + (isLast
                               ? "; a later frame shows LSN \(damage.expectedLSN) had been synced"
                               : "; later segments exist, so it had been synced"))
                }
            }

            if let cut {
                if options.recoveryMode == .strict {
                    throw JournalError(.corruption, "journal corruption in \(name.fileName) at offset \(cut.offset): \(cut.why). LSN \(cut.lsn) and later were acknowledged as durable. Refusing to open in strict mode; run `keiji journal verify` for details, then open with recovery mode pointInTime (keep LSNs before \(cut.lsn)) or salvage (also keep intact records after the damage), e.g. `keiji system --start --recovery-mode pointInTime`.")
                }
                let claimed = max(scan.damage?.claimedRange?.upperBound ?? 0, scan.damage?.laterSyncedThroughLSN ?? 0)
                let kept_ = try cutJournal(at: cut, in: Array(names[index...]), scan: scan, set: set, claimedThrough: claimed)
                info.repairs += kept_.repairs
                salvaged = kept_.salvaged
                if cut.offset >= SegmentHeader.size, scan.header != nil {
                    var truncated = scan
                    truncated.damage = nil
                    truncated.fileSize = cut.offset
                    kept.append(truncated)
                }
                lastWasRepaired = true
                if !salvaged.isEmpty {
                    let span = LSNRange(salvaged[0].lsn...salvaged[salvaged.count - 1].lsn)
                    // What the cut lost, less what is re-appended: the operator must not have to subtract.
                    info.repairs.append(Repair(
                        kind: .recordsSalvaged, file: name.fileName, bytes: 0, lostLSNs: span, lostRanges: kept_.repairs.first?.lostRanges ?? [],
                        detail: "\(salvaged.count) intact records of LSNs \(span.lowerBound)…\(span.upperBound) found after the damage are re-appended under their original LSNs, with gap frames between them"))
                }
                break
            }

            kept.append(scan)
            index += 1
        }
        // A tail written with a smaller frame limit than today's options is sealed, not continued: its header
        // must keep describing every frame in it.
        let tailIsAppendable = !lastWasRepaired && kept.last.map {
            !$0.sealed && Int($0.header?.maxFramePayload ?? 0) >= options.maxFramePayload
        } ?? false
        highestID = max(highestID, kept.map(\.name.segmentID).max() ?? 0)

        info.lastLSN = kept.last.map(\.lastLSN) ?? (checkpoint?.lsn ?? 0)
        info.cleanShutdown = kept.last?.endsWithCleanClose ?? false

        var bridgeThrough: UInt64?
        if let found = checkpoint, found.lsn > info.lastLSN, let first = kept.first, first.name.baseLSN > 1 {
            if options.recoveryMode == .strict {
                throw JournalError(.corruption, "journal corruption in \(directory): checkpoint at LSN \(found.lsn) is past the journal's last LSN \(info.lastLSN), so LSNs \(info.lastLSN + 1)…\(found.lsn) were acknowledged and are missing. Refusing to open in strict mode; open with recovery mode pointInTime or salvage to accept the loss, e.g. `keiji system --start --recovery-mode pointInTime`.")
            }
            // The segments before the surviving ones were compacted behind this checkpoint: setting it aside would
            // leave a journal that starts mid-history, which every later strict open refuses. Keep it, and let
            // the writer bridge the LSNs between the cut and it with a gap frame.
            info.repairs.append(Repair(
                kind: .checkpointBridged, file: CheckpointFile.fileName(lsn: found.lsn), bytes: 0,
                lostLSNs: LSNRange((info.lastLSN + 1)...found.lsn),
                detail: "the journal before \(first.name.fileName) was compacted, so the checkpoint is the only copy of that state; a gap frame carries the journal to LSN \(found.lsn)"))
            bridgeThrough = found.lsn
        } else if let found = checkpoint, found.lsn > info.lastLSN, !kept.isEmpty {
            if options.recoveryMode == .strict {
                throw JournalError(.corruption, "journal corruption in \(directory): checkpoint at LSN \(found.lsn) is past the journal's last LSN \(info.lastLSN), so LSNs \(info.lastLSN + 1)…\(found.lsn) were acknowledged and are missing. Refusing to open in strict mode; open with recovery mode pointInTime or salvage to accept the loss, e.g. `keiji system --start --recovery-mode pointInTime`.")
            }
            // It describes state the surviving journal no longer has: set it aside so LSNs are not reused under it, and
            // the previous checkpoint compaction keeps too when the cut fell before it. The segments start at LSN 1.
            let beyond = try io.listDirectory(directory).compactMap { name in
                CheckpointFile.lsn(fromFileName: name).flatMap { $0 > info.lastLSN ? (name, $0) : nil }
            }.sorted { $0.1 > $1.1 }
            for (file, lsn) in beyond {
                try io.rename(directory + "/" + file, to: directory + "/" + file + ".broken")
                try io.syncDirectory(directory)
                info.repairs.append(Repair(kind: .checkpointQuarantined, file: file, bytes: 0, quarantinedTo: file + ".broken",
                                           lostLSNs: LSNRange((info.lastLSN + 1)...lsn),
                                           detail: "the checkpoint covers LSNs the journal no longer has"))
            }
            checkpoint = nil
            info.checkpointLSN = nil
        }
        info.durationSeconds = Double(monotonicNanoseconds() - started) / 1e9
        return Outcome(info: info, checkpoint: checkpoint, segments: kept, tailIsAppendable: tailIsAppendable,
                       salvaged: salvaged, bridgeThrough: bridgeThrough, highestSegmentID: highestID)
    }

    /// The LSNs of `range` that are not in `kept` (ascending), as ranges.
    static func ranges(of range: LSNRange, without kept: [UInt64]) -> [LSNRange] {
        var out: [LSNRange] = []
        var next = range.lowerBound
        for lsn in kept where lsn >= next && lsn <= range.upperBound {
            if lsn > next { out.append(LSNRange(next...(lsn - 1))) }
            if lsn == range.upperBound { return out }
            next = lsn + 1
        }
        if next <= range.upperBound { out.append(LSNRange(next...range.upperBound)) }
        return out
    }

    /// Loads the newest checkpoint that verifies; damaged newer ones are quarantined and reported, each naming what
    /// recovery fell back to (compaction keeps the previous checkpoint and the segments after it for this).
    private func loadCheckpoint(entries: [String], info: inout RecoveryInfo) throws -> Checkpoint? {
        let files = entries.compactMap { name in CheckpointFile.lsn(fromFileName: name).map { (name, $0) } }
            .sorted { $0.1 > $1.1 }
        var quarantined: [Int] = []
        var found: Checkpoint?
        for (file, lsn) in files {
            let bytes = try io.readAll(directory + "/" + file)
            if let checkpoint = CheckpointFile.decode(bytes), checkpoint.lsn == lsn {
                found = checkpoint
                break
            }
            try io.rename(directory + "/" + file, to: directory + "/" + file + ".broken")
            try io.syncDirectory(directory)
            quarantined.append(info.repairs.count)
            info.repairs.append(Repair(kind: .checkpointQuarantined, file: file, bytes: bytes.count,
                                       quarantinedTo: file + ".broken", detail: "checksum or header invalid"))
        }
        let fallback = found.map { "; " + CheckpointFile.fellBack(to: $0.lsn) }
            ?? "; no older checkpoint verifies, so recovery replays the segments from their start"
        for index in quarantined { info.repairs[index].detail += fallback }
        return found
    }

    /// Copies `[offset, end)` of a segment to a synced `.broken` file, then truncates and syncs the segment.
    private func cutTail(
        of name: SegmentName, at offset: Int, kind: Repair.Kind, lost: LSNRange?, detail: String
    ) throws -> Repair {
        let path = directory + "/" + name.fileName
        let file = try io.open(path, mode: .readWrite)
        defer { io.close(file) }
        let size = try io.size(of: file)
        let tail = size > offset ? try io.read(file, at: offset, count: size - offset) : []
        let quarantine = "\(name.fileName).\(offset).broken"
        if !tail.isEmpty {
            try io.writeAtomically(tail, to: directory + "/" + quarantine, directory: directory)
            try io.truncate(file, to: offset)
            try io.sync(file)
        }
        let header = try io.read(file, at: 0, count: min(size, SegmentHeader.size))
        return Repair(kind: kind, file: name.fileName, offset: offset, bytes: Self.dataBytes(in: tail, at: offset, segmentHeader: header),
                      quarantinedTo: tail.isEmpty ? nil : quarantine, lostLSNs: lost, detail: detail)
    }

    /// How many of `bytes` (a segment's from `offset` on) are data. In a preallocated segment, up to the last nonzero
    /// byte, rounded up to the 8-byte frame alignment: the zeros it holds ahead of its frames (up to a MiB) are not
    /// counted, and a cut of a few frames was reported as a megabyte repaired. Elsewhere zeros are what was written.
    static func dataBytes(in bytes: [UInt8], at offset: Int, segmentHeader: [UInt8]) -> Int {
        guard (try? SegmentHeader.decode(segmentHeader).get())?.isPreallocated == true else { return bytes.count }
        guard let last = bytes.lastIndex(where: { $0 != 0 }) else { return 0 }
        let end = (offset + last + 1 + 7) & ~7
        return min(end - offset, bytes.count)
    }

    /// Cuts the journal at `cut`: the rest of the first segment in `names` and every later segment are
    /// quarantined. In `salvage` mode, the intact records in what was cut are collected first.
    private func cutJournal(
        at cut: (offset: Int, lsn: UInt64, why: String), in names: [SegmentName], scan: SegmentScan,
        set: SegmentSet<JournalSegmentNaming>, claimedThrough: UInt64
    ) throws -> (repairs: [Repair], salvaged: [(lsn: UInt64, bytes: [UInt8])]) {
        let finder = IntactFrameFinder()
        // The highest LSN anything in the cut part vouches for: intact records, the damaged frame's own
        // header, or a later frame's synced-through watermark.
        var highest = claimedThrough
        var found: [UInt64: [UInt8]] = [:]
        var sizes: [Int] = []
        for (position, name) in names.enumerated() {
            let bytes = try io.readAll(set.path(of: name))
            sizes.append(Self.dataBytes(in: bytes, at: 0, segmentHeader: bytes))
            let start = position == 0 ? max(cut.offset, SegmentHeader.size) : SegmentHeader.size
            finder.forEachIntactBatch(in: bytes, name: name, from: start) { lsn, record in
                highest = max(highest, lsn)
                if options.recoveryMode == .salvage, lsn >= cut.lsn, found[lsn] == nil { found[lsn] = record }
            }
        }
        let lost = highest >= cut.lsn ? LSNRange(cut.lsn...highest) : nil
        var repairs: [Repair] = []
        for (position, name) in names.enumerated() {
            if position == 0 && cut.offset >= SegmentHeader.size && scan.header != nil {
                repairs.append(try cutTail(of: name, at: cut.offset, kind: .corruptionTruncated, lost: lost, detail: cut.why))
            } else {
                let target = try set.quarantine(name)
                repairs.append(Repair(kind: position == 0 ? .corruptionTruncated : .segmentQuarantined,
                                      file: name.fileName, offset: position == 0 ? 0 : nil, bytes: sizes[position],
                                      quarantinedTo: target, lostLSNs: position == 0 ? lost : nil,
                                      detail: position == 0 ? cut.why : "follows the damaged segment"))
            }
        }
        let salvaged = found.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if options.recoveryMode == .salvage, let lost, !repairs.isEmpty {
            repairs[0].lostRanges = Self.ranges(of: lost, without: salvaged.map(\.0))
        }
        return (repairs, salvaged)
    }
}
