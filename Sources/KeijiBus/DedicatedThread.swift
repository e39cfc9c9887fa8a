import Foundation

/// Runs blocking socket work on its own `Thread`, never on Swift's cooperative pool: that pool has one thread
/// per core (two here), so a single `recv` parked on it would stall every async task in the process,
/// the scheduler's included. The bus has few connections, so a thread each is cheap and simple.
package enum DedicatedThread {
    /// Starts `body` on a new named thread and returns immediately.
    package static func start(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.start()
    }

    /// Runs `body` on a new thread and suspends (without blocking a pool thread) until it returns.
    static func run<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            start(name) { continuation.resume(with: Result { try body() }) }
        }
    }
}
