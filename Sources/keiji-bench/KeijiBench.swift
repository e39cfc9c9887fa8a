import ArgumentParser

/// `keiji-bench`: measures keiji's components against the limits of the machine it runs on.
///
/// Every subcommand measures the machine's own limit first, in the same run and on the same file system,
/// and reports its figures as ratios to that limit: absolute numbers from a laptop, a VM and a server are
/// not comparable, ratios are.
@main
struct KeijiBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keiji-bench",
        abstract: "Benchmarks for keiji, measured against the machine's own limits in the same run.",
        subcommands: [JournalBenchmark.self, SchedulerBenchmark.self, BusBenchmark.self, SpawnBenchmark.self, ClaimBenchmark.self]
    )
}
