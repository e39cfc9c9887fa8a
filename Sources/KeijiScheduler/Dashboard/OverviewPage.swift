import KeijiCore

/// `/`: every task in one table, like `keiji task --list`: soonest next run first, then the tasks that will
/// not run, by name; each with a sparkline of its recent runs.
struct OverviewPage {
    let snapshot: DashboardSnapshot
    let session: DashboardSessions.Session

    func html() -> String {
        let time = DashboardTime(timeZone: snapshot.timeZone)
        let names = snapshot.state.tasks.keys.sorted { a, b in
            switch (snapshot.nextFireMs[a], snapshot.nextFireMs[b]) {
            case let (x?, y?) where x != y: x < y
            case (_?, nil): true
            case (nil, _?): false
            default: a.rawValue.utf8.lexicographicallyPrecedes(b.rawValue.utf8)
            }
        }
        var rows = ""
        for name in names {
            guard let task = snapshot.state.tasks[name] else { continue }
            let state = snapshot.stateWord(name)
            let next = snapshot.nextFireMs[name]
            let left = next.map { $0 >= snapshot.nowMs ? DashboardTime.span(milliseconds: $0 - snapshot.nowMs)
                                                        : "overdue " + DashboardTime.span(milliseconds: snapshot.nowMs - $0) }
            let last = task.recentRuns.last?.resultText ?? "-"
            rows += """
                <tr data-task="\(HTMLText.escape(name.rawValue))"><td><a href="tasks/\(HTMLText.pathSegment(name.rawValue))">\(HTMLText.escape(name.rawValue))</a></td>
                <td class="state-\(state)">\(state)</td><td>\(HTMLText.escape(time.schedule(task.definition.schedule)))</td>
                <td>\(next.map(time.instant) ?? "-")</td><td>\(left ?? "-")</td>
                <td class="\(task.recentRuns.last.map { $0.outcome == "succeeded" ? "ok" : "bad" } ?? "")">\(HTMLText.escape(last))</td>
                <td>\(RunChart(width: 160, height: 28, labelled: false).svg(task.recentRuns))</td></tr>

                """
        }
        let body = """
            <section id="overview" data-live data-lsn="\(snapshot.state.lastLSN)">
            <h1>Tasks</h1>
            <table id="tasks"><thead><tr><th>Task</th><th>State</th><th>Schedule</th><th>Next run</th><th>Left</th><th>Last result</th><th>Recent runs</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            <p>\(names.count) task\(names.count == 1 ? "" : "s"); as of \(time.instant(milliseconds: snapshot.nowMs)).</p>
            </section>
            """
        return HTMLText.page(title: "Tasks", body: body, session: session)
    }
}
