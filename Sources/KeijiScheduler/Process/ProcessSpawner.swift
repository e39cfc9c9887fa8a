import CSpawn
import Foundation
import KeijiCore

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Starts task processes from one dedicated, never-exiting thread.
///
/// Children get `PR_SET_PDEATHSIG(SIGKILL)`, which Linux ties to the *thread* that forked, not the process:
/// forking from Swift's cooperative pool (whose threads come and go) would kill children at random. One
/// long-lived thread makes "killed if the scheduler dies" hold exactly.
final class ProcessSpawner: @unchecked Sendable {
    // @unchecked: `queue` is guarded by `condition`.
    struct Request: Sendable {
        var path: String
        var arguments: [String]
        var environment: [String: String]
        var directory: String
        var outputDescriptor: Int32
    }

    private let condition = NSCondition()
    private var queue: [(Request, CheckedContinuation<pid_t, any Error>)] = []

    static let shared = ProcessSpawner()

    private init() {
        let thread = Thread { [self] in self.serve() }
        thread.name = "keiji-spawner"
        thread.start()
    }

    /// Starts the process; returns its pid (also its process group id).
    func spawn(_ request: Request) async throws -> pid_t {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            queue.append((request, continuation))
            condition.signal()
            condition.unlock()
        }
    }

    private func serve() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            queue.removeAll()
            condition.unlock()
            for (request, continuation) in batch {
                let result = Self.spawnNow(request)
                if result > 0 {
                    continuation.resume(returning: result)
                } else {
                    continuation.resume(throwing: KeijiError(.spawn, "cannot start \(request.path): \(String(cString: strerror(-result)))"))
                }
            }
        }
    }

    private static func spawnNow(_ request: Request) -> pid_t {
        let argv = ([request.path] + request.arguments).map { strdup($0) } + [nil]
        let envp = request.environment.sorted { $0.key < $1.key }.map { strdup($0.key + "=" + $0.value) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        return keiji_spawn(request.path, argv, envp, request.directory, request.outputDescriptor, 1)
    }
}
