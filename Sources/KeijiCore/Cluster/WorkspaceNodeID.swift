import Foundation

extension Workspace {
    /// Where ``clusterNodeID()`` keeps this workspace's id.
    public var clusterNodeIDFile: String { systemRoot + "/cluster-node.id" }

    /// A random id of this workspace, made at its first join of a cluster: the cluster stores it beside the node's
    /// applied position, so a new workspace started under a name another one used (a second `keiji init` on the
    /// same host, whose default NODE_NAME is the host name) is told apart and applies the command log from the start.
    public func clusterNodeID() throws -> String {
        if let data = try? FileSystem.read(clusterNodeIDFile),
           let id = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !id.isEmpty {
            return id
        }
        let id = UUID().uuidString.lowercased()
        try FileSystem.writeAtomically(Data((id + "\n").utf8), to: clusterNodeIDFile)
        return id
    }
}
