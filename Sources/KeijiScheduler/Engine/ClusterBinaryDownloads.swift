import Foundation
import KeijiCore

/// Installs the task binaries the cluster's commands name (``ClusterBinaries/install(_:at:)``), on a thread and a
/// connection of their own: a 50 MB download is many round trips, and on ``ClusterLink``'s thread it would hold up
/// this node's claims and heartbeats (a node silent for 10 s is taken for dead). The connection is opened at the
/// first download, so a node that only ever runs its own builds never opens it.
actor ClusterBinaryDownloads {
    private nonisolated let thread: BackgroundThread
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    private let url: URL
    private var connection: PostgresConnection?
    /// The binary whose download the database failed last: a failure repeated at every poll is logged once.
    private var failed: String?
    private let note: @Sendable (String) -> Void

    init(url: URL, note: @escaping @Sendable (String) -> Void) {
        thread = BackgroundThread(name: "keiji-cluster-binaries")
        self.url = url
        self.note = note
    }

    deinit { thread.stop() }

    /// Makes `target` the binary `sha256`. Nil when the database failed: the command waits for the next poll. A
    /// binary that is missing or does not match its hash is a failure: the command cannot apply.
    func install(_ sha256: String, at target: String) -> Result<ClusterBinaries.Installation, any Error>? {
        do {
            let connection = try self.connection ?? PostgresConnection(url: url, name: Settings.Database.postgres(url).description)
            self.connection = connection
            let installed = try ClusterBinaries(connection: connection).install(sha256, at: target)
            failed = nil
            return .success(installed)
        } catch let error as KeijiError where error.code == .database {
            if failed != sha256 {
                note("cluster: downloading the binary \(sha256.prefix(12))… for \(target) failed; its command waits, tried again at each poll: \(error)")
            }
            failed = sha256
            return nil
        } catch {
            return .failure(error)
        }
    }
}
