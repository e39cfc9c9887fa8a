/// Runs `body` on a thread of its own rather than on Swift's global pool, with the default actors it calls (the
/// journal's): the tests that recover thousands of crash images or rescan a growing journal do long stretches of
/// synchronous work between their awaits, and on the pool (one thread per core, two here) they held its threads
/// for seconds at a time. Every other async test in the process then waited for a turn: in a full suite with a core
/// kept busy, a Unix-socket relay that takes 17 ms alone took 90 s. On a thread of its own such a test still gets
/// its share of the cores, from the kernel, but the pool stays free for the rest.
func onOwnThread<T: Sendable>(_ body: () async throws -> T) async throws -> T {
    let executor = DedicatedThreadsExecutor(threads: 1)
    defer { executor.shutdown() }
    return try await withTaskExecutorPreference(executor) { try await body() }
}
