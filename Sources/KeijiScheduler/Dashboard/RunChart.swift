import KeijiCore

/// A server-side SVG chart of a task's recent runs, oldest left: one bar per run for its duration (red when it
/// did not succeed) and a dot for its start lateness, on one scale. Pages stay one request and work without
/// JavaScript; each bar's `<title>` is its tooltip.
struct RunChart {
    var width: Int
    var height: Int
    /// Axis labels and a legend (the task page); the overview's sparkline has neither.
    var labelled: Bool

    func svg(_ runs: [RunSummary]) -> String {
        let top = labelled ? 18 : 2, bottom = labelled ? 16 : 2, left = labelled ? 56 : 2
        let plotHeight = Double(height - top - bottom), plotWidth = Double(width - left - 4)
        let durations = runs.map { run in run.durationMs.map { max(0, $0) } }
        let largest = max(1, (durations.compactMap { $0 } + runs.compactMap(\.beganLatenessMs)).max() ?? 1)
        // A bar per run, at most as wide as a full chart of recentRunLimit runs would make it: two runs are not two slabs.
        let slot = plotWidth / Double(max(runs.count, SchedulerState.recentRunLimit))
        var parts: [String] = []
        parts.append(##"<svg xmlns="http://www.w3.org/2000/svg" class="run-chart" width="\##(width)" height="\##(height)" viewBox="0 0 \##(width) \##(height)" role="img" aria-label="recent runs: duration and lateness">"##)
        parts.append(##"<rect x="0" y="0" width="\##(width)" height="\##(height)" fill="#fff" stroke="#e3e6ea"/>"##)
        if labelled {
            parts.append(##"<text x="4" y="\##(top + 4)" font-size="10" fill="#555">\##(HTMLText.escape(DashboardTime.span(milliseconds: largest)))</text>"##)
            parts.append(##"<text x="4" y="\##(height - bottom)" font-size="10" fill="#555">0</text>"##)
            parts.append(##"<text x="\##(left)" y="12" font-size="11" fill="#1664c0">■ duration</text><text x="\##(left + 80)" y="12" font-size="11" fill="#e08a00">● lateness</text>"##)
        }
        if runs.isEmpty {
            parts.append(##"<text x="\##(left + 6)" y="\##(top + Int(plotHeight / 2))" font-size="11" fill="#777">no runs yet</text>"##)
        }
        func y(_ value: Int64) -> Double { Double(top) + plotHeight - plotHeight * Double(value) / Double(largest) }
        for (index, run) in runs.enumerated() {
            let x = Double(left) + Double(index) * slot
            let color = run.outcome == "succeeded" ? "#1664c0" : "#b3261e"
            let duration = durations[index] ?? 0
            let barHeight = max(1, Double(top) + plotHeight - y(duration))
            let tip = HTMLText.escape("\(run.resultText), took \(durations[index].map(DashboardTime.span) ?? "-"), late \(run.beganLatenessMs.map(DashboardTime.span) ?? "-")")
            parts.append(##"<rect x="\##(fmt(x + slot * 0.15))" y="\##(fmt(Double(top) + plotHeight - barHeight))" width="\##(fmt(max(1, slot * 0.7)))" height="\##(fmt(barHeight))" fill="\##(color)"><title>\##(tip)</title></rect>"##)
            if let late = run.beganLatenessMs {
                parts.append(##"<circle cx="\##(fmt(x + slot / 2))" cy="\##(fmt(y(late)))" r="\##(labelled ? 3 : 2)" fill="#e08a00"/>"##)
            }
        }
        parts.append("</svg>")
        return parts.joined()
    }

    private func fmt(_ value: Double) -> String { String(format: "%.1f", value) }
}
