import Foundation
import KeijiCore
import KeijiJournal

/// `/system`: like `keiji system --status`: the services, the last recovery report, the journal's statistics
/// and, on PostgreSQL, the cluster's nodes.
struct SystemPage {
    let snapshot: DashboardSnapshot
    let facts: SystemFacts
    /// From the database (nil: SQLite, or the database did not answer).
    let nodes: [ClusterNode]?
    let session: DashboardSessions.Session

    func html() -> String {
        let time = DashboardTime(timeZone: snapshot.timeZone)
        func list(_ facts: [(String, String)]) -> String {
            "<dl>" + facts.map { "<dt>\(HTMLText.escape($0.0))</dt><dd>\(HTMLText.escape($0.1))</dd>" }.joined() + "</dl>"
        }
        var body = "<h1>System</h1><h2>Services</h2>"
        body += list([("scheduler", "online, pid \(facts.schedulerPID)"),
                      ("bus", facts.busPID.map { "pid \($0) (from its pid file)" } ?? "no pid file"),
                      ("node", snapshot.nodeName)])
        body += "<h2>Last recovery</h2>"
        if let report = snapshot.recoveryReport {
            body += "<dl>" + report.entries(instant: { time.instant(milliseconds: $0) }, slot: { time.instant(milliseconds: $0 * 1000) }).map { entry in
                "<dt>\(HTMLText.escape(entry.label))</dt><dd>\(HTMLText.escape(entry.value))"
                    + (entry.details.isEmpty ? "" : "<ul>" + entry.details.map { "<li>\(HTMLText.escape($0))</li>" }.joined() + "</ul>") + "</dd>"
            }.joined() + "</dl>"
        } else {
            body += "<p>none yet</p>"
        }
        body += "<h2>Journal</h2>"
        if let stats = facts.journal {
            body += list([("segments", "\(stats.segments.count), \(stats.totalBytes) bytes"), ("records", "\(stats.records)"),
                          ("LSNs", "\(stats.firstLSN.map(String.init) ?? "-") to \(stats.lastLSN.map(String.init) ?? "-") (durable through \(facts.durableLSN))"),
                          ("checkpoint", stats.checkpointLSN.map { "at LSN \($0)" } ?? "none"),
                          ("compression", String(format: "%.2f×", stats.compressionRatio))])
        } else {
            body += "<p class=\"bad\">cannot read the journal's statistics: \(HTMLText.escape(facts.journalError ?? "unknown"))</p>"
        }
        if snapshot.clustered {
            body += "<h2>Cluster nodes</h2>"
            if let nodes {
                var rows = ""
                for node in nodes {
                    rows += "<tr><td>\(HTMLText.escape(node.name))</td><td>\(HTMLText.escape(node.host))</td><td>\(node.pid)</td>"
                        + "<td>\(node.stopped ? "stopped" : String(format: "%.1f s ago", node.heartbeatAgeSeconds))</td><td>\(node.claimsLastMinute)</td></tr>"
                }
                body += "<table id=\"nodes\"><thead><tr><th>Node</th><th>Host</th><th>Pid</th><th>Heartbeat</th><th>Claims (1 min)</th></tr></thead><tbody>\(rows)</tbody></table>"
            } else {
                body += "<p>The database did not answer; live nodes as of this node's last heartbeat: "
                    + HTMLText.escape(snapshot.liveNodes.joined(separator: ", ")) + "</p>"
            }
        }
        return HTMLText.page(title: "System", body: body, session: session)
    }
}
