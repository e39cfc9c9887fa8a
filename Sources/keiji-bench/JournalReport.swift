/// Everything `keiji-bench journal` measured, as printed in the table and written with `--json`.
struct JournalReport: Sendable, Codable {
    var machine: MachineDescription
    var secondsPerPhase: Double
    var records: RecordSizes
    /// Raw limit first, then the journal phases, in the order they ran.
    var phases: [PhaseResult]
    var replay: ReplayResult
    var targets: [TargetCheck]

    func phase(_ name: String) -> PhaseResult? { phases.first { $0.name == name } }
}

/// One timed loop: how many records were acknowledged in how long, and how long each call took.
struct PhaseResult: Sendable, Codable {
    var name: String
    var label: String
    var records: Int
    var seconds: Double
    var recordsPerSecond: Double
    /// Per call: per append, or per batch for batched phases.
    var latency: LatencySummary?
    var producers: Int?
    /// Records per `append(contentsOf:)` call, for batched phases.
    var batchSize: Int?
    /// For concurrent `sync` phases: producers × the raw fdatasync rate. With one sync per batch and each
    /// producer waiting for its own record, a batch holds at most one record per producer.
    var ceilingRecordsPerSecond: Double?
    /// Records over frames in the phase's journal: the mean group-commit batch.
    var recordsPerFrame: Double?
    /// Raw record bytes over stored payload bytes in the phase's journal.
    var compressionRatio: Double?

    init(name: String, label: String, records: Int, seconds: Double, latency: LatencySummary?) {
        self.name = name
        self.label = label
        self.records = records
        self.seconds = seconds
        recordsPerSecond = seconds > 0 ? Double(records) / seconds : 0
        self.latency = latency
    }
}

/// Writing, replaying and reopening a large journal.
struct ReplayResult: Sendable, Codable {
    var records: Int
    var rawRecordBytes: Int
    var storedBytes: Int
    var segments: Int
    /// Writing the records in `none` mode in batches, and closing (which syncs).
    var writeSeconds: Double
    /// `JournalDirectory.forEachRecord` over every record, end to end.
    var replaySeconds: Double
    var replayRecordsPerSecond: Double
    /// Raw record bytes delivered per second, in MB (10^6 bytes).
    var replayMegabytesPerSecond: Double
    /// `Journal.open` wall time, recovery scan included.
    var openSeconds: Double
    var openRecordsScanned: Int
    /// What `RecoveryInfo.durationSeconds` reports for the same open.
    var openRecoveryScanSeconds: Double
    var compressionRatio: Double
}

/// A figure checked against its target.
struct TargetCheck: Sendable, Codable {
    var name: String
    var measured: Double
    /// The figure must be at least this.
    var atLeast: Double
    var unit: String
    var pass: Bool

    init(_ name: String, measured: Double, atLeast: Double, unit: String) {
        self.name = name
        self.measured = measured
        self.atLeast = atLeast
        self.unit = unit
        pass = measured >= atLeast
    }

    var verdict: String { pass ? "PASS" : "MISS" }
}
