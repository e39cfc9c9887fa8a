// swift-tools-version: 6.2
import PackageDescription

/// The journal and core libraries optimised in debug builds too, their assertions kept. The tests run debug builds
/// (the test bundle, and the `keiji`, `keiji-scheduler` and `keiji-bus` processes they start), and unoptimised,
/// the journal's recovery scans, the snapshot and record codecs and SHA-256 were most of the suite's CPU on CI's
/// two cores, the time in which other tests wait for the test process's two pool threads. Measured, with the
/// figures, in the README ("How it is tested"); the bus and scheduler libraries cost more to build so than they save.
let optimizedInDebugBuilds: [SwiftSetting] = [.unsafeFlags(["-O", "-assert-config", "Debug"], .when(configuration: .debug))]

/// keiji: a crash-safe task scheduler. Dependency arrows point one way:
/// executables → Scheduler/Bus → Core → Journal → CLZ4/CCRC32C.
let package = Package(
    name: "keiji",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "KeijiJournal", targets: ["KeijiJournal"]),
        .library(name: "KeijiCore", targets: ["KeijiCore"]),
        .library(name: "KeijiTaskKit", targets: ["KeijiTaskKit"]),
        .executable(name: "keiji-scheduler", targets: ["keiji-scheduler"]),
        .executable(name: "keiji-bus", targets: ["keiji-bus"]),
        .executable(name: "keiji", targets: ["keiji"]),
        .executable(name: "keiji-bench", targets: ["keiji-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The scheduler's /metrics endpoint (issue 12): the registry and text rendering. Only KeijiScheduler links
        // it; the `keiji` CLI must not (every call is a fresh process).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // System libraries named by the design card. Installed by scripts/test and scripts/quickstart.
        .systemLibrary(name: "CLZ4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // The PostgreSQL query view (DB_URL=postgres://…) through libpq: it builds in seconds; postgres-nio would add
        // minutes to every clean build (it pulls swift-nio and TLS). Its calls block, so they run on the view writer's
        // thread. Loaded with dlopen when a database URL needs it (CLibPQ.h says why); libpq-dev for its header.
        .target(name: "CLibPQ", cSettings: [.unsafeFlags(["-I/usr/include/postgresql"])]),
        // glibc's <malloc.h> (malloc_trim), which the Glibc module leaves out; part of libc, nothing to link.
        .systemLibrary(name: "CMalloc"),
        // CRC32C is not exported by liblz4; this small C target uses the SSE4.2 / ARMv8 CRC instructions.
        .target(name: "CCRC32C"),

        .target(name: "KeijiJournal", dependencies: ["CLZ4", "CCRC32C"], swiftSettings: optimizedInDebugBuilds),
        .target(name: "KeijiCore", dependencies: ["KeijiJournal", "CLZ4", "CSQLite", "CLibPQ"], swiftSettings: optimizedInDebugBuilds),
        // The scheduler's side of keiji-spawn-server (start it, send it requests with a descriptor) and the
        // protocol both sides share.
        .target(name: "CSpawn"),
        // accept4 with close-on-exec for the bus and the HTTP server (Swift's Glibc module does not import it).
        .target(name: "CSocket"),
        .target(name: "KeijiBus", dependencies: ["KeijiCore", "CSocket"]),
        // The task SDK: no dependencies, shipped as source into ~/keiji/sdk by `keiji init`.
        .target(name: "KeijiTaskKit"),
        .target(
            name: "KeijiScheduler",
            dependencies: ["KeijiCore", "KeijiBus", "CSpawn", "CMalloc", "CSocket",
                           .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        .executableTarget(name: "keiji-scheduler", dependencies: ["KeijiScheduler", "KeijiJournal", "keiji-spawn-server"]),
        .executableTarget(name: "keiji-bus", dependencies: ["KeijiBus"]),
        .executableTarget(
            name: "keiji",
            dependencies: ["KeijiCore", "KeijiBus", "KeijiJournal", "CSpawn", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            // Every CLI call is a fresh process: linked statically, the Swift runtime and Foundation cost no
            // dynamic symbol binding at start (about two thirds of a bare Foundation binary's start-up CPU), nor do
            // SQLite, LZ4 and libstdc++ (a bare start at 0.82× the CPU with them: StaticLibraries/ holds a linker
            // script for each, found before the shared library, that names its archive from the -dev package).
            // Release only: SwiftPM links an executable target's objects and flags into the test bundle, and
            // the debug test bundle cannot link Testing statically.
            exclude: ["StaticLibraries"],
            swiftSettings: [.unsafeFlags(["-use-static-resource-dir"], .when(configuration: .release))],
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-L", Context.packageDirectory + "/Sources/keiji/StaticLibraries"],
                                          .when(configuration: .release))]
        ),
        // Starts and reaps every task run for the scheduler, and kills their groups if the scheduler dies. Plain C
        // without the Swift runtime: `-nostartfiles` drops swiftrt.o (the one reference to libswiftCore) and
        // `-static-executable` links statically, so nothing of libswiftCore.a is pulled in (`ldd`: not a dynamic
        // executable). Checked by SpawnServerTests.helperHasNoSwiftRuntime.
        .executableTarget(
            name: "keiji-spawn-server",
            dependencies: ["CSpawn"],
            linkerSettings: [.unsafeFlags(["-static-executable", "-nostartfiles"])]
        ),

        .executableTarget(
            name: "keiji-bench",
            dependencies: ["KeijiJournal", "KeijiCore", "KeijiScheduler", "KeijiBus", "keiji-spawn-server",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // A tiny writer the kill -9 test runs and kills; not installed.
        .executableTarget(name: "keiji-journal-writer", dependencies: ["KeijiJournal"]),

        .testTarget(name: "KeijiCoreTests", dependencies: ["KeijiCore", "KeijiTestSupport"]),
        .target(name: "KeijiTestSupport", path: "Tests/KeijiTestSupport"),
        .testTarget(name: "KeijiSchedulerTests", dependencies: ["KeijiScheduler", "keiji-scheduler", "keiji-spawn-server", "KeijiTestSupport"]),
        .testTarget(name: "KeijiBusTests", dependencies: ["KeijiBus", "keiji-bus", "KeijiTestSupport"]),
        .testTarget(name: "KeijiEndToEndTests", dependencies: ["keiji", "keiji-bus", "keiji-scheduler", "keiji-spawn-server", "KeijiJournal", "KeijiCore", "CSpawn", "CSocket", "KeijiTestSupport"]),
        .testTarget(
            name: "KeijiJournalTests",
            dependencies: ["KeijiJournal", "CSQLite", "keiji-journal-writer"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer harnesses for the parsers that face untrusted bytes. They need `-sanitize=fuzzer`, so they exist
// only when scripts/fuzz builds them (KEIJI_FUZZ=1, in .build/fuzz); a normal `swift build` never sees them.
if Context.environment["KEIJI_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CFuzzDriver", path: "Fuzz/CFuzzDriver"),
        .executableTarget(name: "FrameScannerFuzzer", dependencies: ["KeijiJournal", "CFuzzDriver"], path: "Fuzz/FrameScannerFuzzer"),
        .executableTarget(name: "BusRequestFuzzer", dependencies: ["KeijiBus", "KeijiCore", "CFuzzDriver"], path: "Fuzz/BusRequestFuzzer"),
    ]
}
