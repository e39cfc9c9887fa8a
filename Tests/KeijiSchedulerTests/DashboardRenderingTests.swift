import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// The dashboard's pieces that need no server: escaping, form parsing, the session store.
struct DashboardRenderingTests {
    @Test func escapingLeavesNoMarkupAndNoAttributeBreakout() {
        #expect(HTMLText.escape(#"<script>alert("x")</script> & 'y'"#) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;")
        #expect(HTMLText.escape("plain ünïcode") == "plain ünïcode")
    }

    /// Text shows its control characters as `--get` prints them; the log's lines keep theirs, as `--logs` prints them.
    @Test func controlCharactersShowAsEscapesOutsideTheLog() {
        #expect(HTMLText.escape("a\u{1B}[31m<b>\u{07}\t\u{7F}") == #"a\u{1B}[31m&lt;b&gt;\u{7}\t\u{7F}"#)
        #expect(HTMLText.markup("a\u{1B}[31m<b>\t") == "a\u{1B}[31m&lt;b&gt;\t")
    }

    @Test func formsAreReadAsBrowsersSendThem() {
        let form = DashboardRoutes.form(Data("token=a%2Bb+c&csrf=&x".utf8))
        #expect(form["token"] == "a+b c" && form["csrf"] == "" && form["x"] == "")
    }

    /// DNS rebinding: a page of another site whose name resolves to 127.0.0.1 sends its own name as `Host`.
    @Test func onlyRequestsNamingThisServerAreServed() {
        for host in ["127.0.0.1:9465", "localhost:9465", "LocalHost:9465", "[::1]:9465"] {
            #expect(DashboardRoutes.isServed(host: host, port: 9465), "\(host)")
        }
        for host in [nil, "", "rebind.attacker.example:9465", "127.0.0.1:9466", "127.0.0.1", "localhost", "127.0.0.1:9465.evil",
                     "127.0.0.1:9465, evil:9465", "localhost.:9465", "127.0.0.2:9465"] as [String?] {
            #expect(!DashboardRoutes.isServed(host: host, port: 9465), "\(host ?? "no Host")")
        }
        #expect(DashboardRoutes.isServed(host: "localhost", port: 80) && DashboardRoutes.isServed(host: "localhost:80", port: 80))
    }

    @Test func onlyTheTokenOpensASessionAndEachSessionHasItsOwnCSRFToken() throws {
        let sessions = DashboardSessions(token: "s3cret-token")
        #expect(sessions.logIn(offering: "s3cret-tokeN") == nil && sessions.logIn(offering: "") == nil && sessions.logIn(offering: "s3cret") == nil)
        let first = try #require(sessions.logIn(offering: "s3cret-token"))
        let second = try #require(sessions.logIn(offering: "s3cret-token\n"))
        #expect(first.id.count == 64 && first.id != second.id && first.base == "/s/\(first.id)/")
        let a = try #require(sessions.session(id: first.id))
        let b = try #require(sessions.session(id: second.id))
        #expect(a.csrfToken.count == 64 && a.csrfToken != b.csrfToken)
        #expect(sessions.session(id: first.id + "x") == nil && sessions.session(id: "") == nil)
        // A logout ends that session only.
        sessions.logOut(id: first.id)
        #expect(sessions.session(id: first.id) == nil && sessions.session(id: second.id) != nil)
    }
}

/// The dashboard's `/system` page and `keiji system --status` word the last recovery from the same entries
/// (`RecoveryReport.entries`), so a fact the report gains shows on both, with its details.
struct RecoveryReportPageTests {
    static func fullReport() throws -> RecoveryReport {
        var report = RecoveryReport(startedAt: 1_700_000_000_000, previousShutdown: .crash)
        report.journal.lastLSN = 40
        report.journal.repairs = ["cut a torn tail of 12 bytes"]
        report.interruptedRuns = [.init(task: try TaskName("backup"), runID: "a1b2c3", slot: 1_699_999_990, startedAt: 1_699_999_990_100, action: "re-run")]
        report.missedSlots = [.init(task: try TaskName("ping"), policy: .once, count: 7, firstSlot: 1_699_999_900, lastSlot: 1_699_999_960, runs: 1)]
        report.refusedRecords = [RefusedRecord(lsn: 12, type: "task.created", task: try TaskName("odd"), reason: "an unknown schedule")]
        report.retriesResumed = [.init(task: try TaskName("flaky"), slot: nil, attempt: 2, dueAt: 1_700_000_001_000)]
        report.viewAheadOfJournalAt = 44
        var cluster = RecoveryReport.Cluster(node: "node-a")
        cluster.ownClaims = (0..<25).map { .init(task: "ping", slot: 1_699_999_000 + Int64($0), action: "marked finished") }
        report.cluster = cluster
        return report
    }

    @Test func everyEntryAndEveryDetailIsOnTheSystemPage() throws {
        let report = try Self.fullReport()
        var state = SchedulerState()
        state.lastLSN = 40
        let snapshot = DashboardSnapshot(state: state, runningCounts: [:], nextFireMs: [:], recoveryReport: report, nowMs: 1_700_000_002_000,
                                         timeZone: TimeZone(identifier: "UTC")!, nodeName: "node-a", liveNodes: ["node-a"], clustered: false)
        let page = SystemPage(snapshot: snapshot, facts: SystemFacts(schedulerPID: 1, busPID: nil, journal: nil, journalError: "x", durableLSN: 40), nodes: nil,
                              session: .init(id: "ab", csrfToken: "cd", expiresAt: .now)).html()
        let entries = report.entries(instant: { "\($0)ms" }, slot: { "\($0)s" })
        #expect(entries.map(\.label) == ["started", "replayed", "repaired", "interrupted", "retries", "missed slots", "refused", "re-applied",
                                         "LOST", "cluster", "own claims", "took"])
        for entry in entries {
            #expect(page.contains("<dt>\(HTMLText.escape(entry.label))</dt>"), "\(entry.label) is missing from the page")
        }
        for needle in ["backup run a1b2c3 started", "ping: 7 slot(s)", "odd task.created at LSN 12: an unknown schedule", "flaky (manual run): attempt 2",
                       "records 41…44 are missing from the journal", "cut a torn tail of 12 bytes", "… and 5 more (recovery.json has them all)"] {
            #expect(page.contains(HTMLText.escape(needle)), "the page lacks \(needle)")
        }
        #expect(entries.first { $0.label == "own claims" }?.details.count == RecoveryReport.ownClaimsListed + 1)
    }
}
