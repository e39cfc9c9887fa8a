import KeijiCore

/// `/tasks/<name>`: the definition and policies, the recent runs as a table and a chart, the log's tail, and
/// the actions (`keiji task --run/--stop/--disable/--enable/--resolve` as POST forms with the CSRF token).
struct TaskPage {
    let snapshot: DashboardSnapshot
    let name: TaskName
    let logTail: [String]
    let session: DashboardSessions.Session

    /// The actions the page offers, by the path word a form posts to.
    static let actions: [(word: String, label: String)] = [("run", "Run now"), ("stop", "Stop"), ("disable", "Disable"), ("enable", "Enable"), ("resolve", "Resolve")]

    static func event(for word: String, _ name: TaskName) -> JournalEntry.Event? {
        switch word {
        case "run": .taskTriggered(name)
        case "stop": .taskStopRequested(name)
        case "disable": .taskDisabled(name)
        case "enable": .taskEnabled(name)
        case "resolve": .taskResolved(name)
        default: nil
        }
    }

    func html() -> String? {
        guard let task = snapshot.state.tasks[name] else { return nil }
        let time = DashboardTime(timeZone: snapshot.timeZone)
        let escapedName = HTMLText.escape(name.rawValue)
        let definition = task.definition, policy = definition.policy
        let state = snapshot.stateWord(name)
        let action: String = switch definition.action {
        case .binary(let path): "binary " + path
        case .command(let command): "command " + command
        }
        let facts: [(String, String)] = [
            ("State", state + (task.isError && !task.errorText.isEmpty ? ": " + task.errorText : "")),
            ("Description", definition.description), ("Runs", action), ("Schedule", time.schedule(definition.schedule)),
            ("Next run", snapshot.nextFireMs[name].map(time.instant) ?? "-"),
            ("Timeout", policy.timeoutSeconds.map { "\($0) s" } ?? "none"), ("Grace", "\(policy.graceSeconds) s"),
            ("Overlap", policy.overlap.rawValue), ("Retries", "\(policy.retries) (backoff \(policy.retryBackoffSeconds) s)"),
            ("Catch-up", policy.catchUp.rawValue + (policy.catchUp == .all ? " (at most \(policy.catchUpLimit))" : "")),
            ("Re-run interrupted", policy.rerunInterrupted ? "yes" : "no"), ("Continue on error", policy.continueOnError ? "yes" : "no"),
            ("Folder", definition.directory),
        ]
        let factList = facts.map { "<dt>\(HTMLText.escape($0.0))</dt><dd>\(HTMLText.escape($0.1))</dd>" }.joined()
        var runRows = ""
        for run in task.recentRuns.reversed() {
            let duration = run.durationMs.map { DashboardTime.span(milliseconds: $0) } ?? "-"
            runRows += """
                <tr><td>\(run.slot.map { time.instant(milliseconds: $0 * 1000) } ?? "-")</td><td>\(run.began.map(time.instant) ?? "-")</td>
                <td>\(duration)</td><td>\(run.beganLatenessMs.map(DashboardTime.span) ?? "-")</td>
                <td class="\(run.outcome == "succeeded" ? "ok" : "bad")">\(HTMLText.escape(run.resultText))</td>
                <td>\(run.attempt)</td><td>\(HTMLText.escape(run.trigger))</td><td>\(HTMLText.escape(run.message ?? ""))</td></tr>

                """
        }
        let buttons = Self.actions.map { action in
            """
            <form class="inline" method="post" action="tasks/\(HTMLText.pathSegment(name.rawValue))/\(action.word)">\
            <input type="hidden" name="csrf" value="\(HTMLText.escape(session.csrfToken))">\
            <button type="submit" id="action-\(action.word)">\(action.label)</button></form>
            """
        }.joined()
        let body = """
            <h1>Task \(escapedName)</h1>
            <p id="actions">\(buttons)</p>
            <section id="task-live" data-live data-task="\(escapedName)" data-lsn="\(snapshot.state.lastLSN)">
            <p>State: <strong id="task-state" class="state-\(state)">\(state)</strong></p>
            <dl id="definition">\(factList)</dl>
            <h2>Recent runs</h2>
            \(RunChart(width: 720, height: 160, labelled: true).svg(task.recentRuns))
            <table id="runs" data-count="\(task.recentRuns.count)" data-last-run="\(HTMLText.escape(task.recentRuns.last?.runID ?? ""))">
            <thead><tr><th>Slot</th><th>Start</th><th>Duration</th><th>Late</th><th>Result</th><th>Attempt</th><th>Trigger</th><th>Message</th></tr></thead>
            <tbody>\(runRows)</tbody></table>
            <h2>Log (last \(logTail.count) lines)</h2>
            <pre id="log">\(logTail.map(HTMLText.markup).joined(separator: "\n"))</pre>
            </section>
            """
        return HTMLText.page(title: name.rawValue, body: body, session: session)
    }
}
