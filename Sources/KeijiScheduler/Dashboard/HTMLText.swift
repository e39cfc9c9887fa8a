import Foundation
import KeijiCore

/// Every dynamic string on a dashboard page goes through ``escape(_:)``: task names, descriptions, commands and
/// error texts are the user's (or a task's) text, and a task that prints `<script>` must show it, not run it.
enum HTMLText {
    /// Markup escaped, and control characters and odd spaces shown as `keiji task --get` shows them (``VisibleText``):
    /// on a page an ESC and a BEL showed as the same empty box (Chromium) or as nothing, and `echo\u{A0}x` read as `echo x`.
    static func escape(_ text: String) -> String { markup(VisibleText.escaped(text)) }

    /// Markup escaped, nothing else: for the log's lines, which the page shows as `keiji task --logs` prints them.
    static func markup(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A path segment for a link (`/tasks/<name>`).
    static func pathSegment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }

    /// The page around `body`: the title, the navigation, a little CSS, and live.js (pages work without it).
    /// With a session, links and forms in `body` are relative: `<base href>` puts them under the session's path.
    static func page(title: String, body: String, session: DashboardSessions.Session?) -> String {
        let base = session.map { "<base href=\"\(escape($0.base))\">" } ?? ""
        let navigation = session.map {
            """
            <a href="./">Tasks</a><a href="system">System</a>\
            <form class="inline" method="post" action="logout"><input type="hidden" name="csrf" value="\(escape($0.csrfToken))">\
            <button type="submit" id="logout">Log out</button></form>
            """
        } ?? ""
        return 
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">\(base)
        <title>\(escape(title)) · keiji</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:20px;align-items:center}
        header a{color:#cfd8e3;text-decoration:none}header strong{font-size:16px}
        main{padding:16px 24px}table{border-collapse:collapse;background:#fff;width:100%}
        th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6ea;vertical-align:middle}
        th{background:#eef1f4;font-weight:600}pre{background:#111;color:#ddd;padding:10px;overflow:auto;max-height:420px}
        .state-running{color:#1664c0;font-weight:600}.state-error{color:#b3261e;font-weight:600}.state-disabled{color:#777}
        .bad{color:#b3261e}.ok{color:#1e7b34}form.inline{display:inline}button{margin-right:6px}
        dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{font-weight:600}
        </style></head><body>
        <header><strong>keiji</strong>\(navigation)</header>
        <main>\(body)</main>
        <script src="/static/live.js" defer></script>
        </body></html>
        """
    }
}

/// Times and spans in words, as `keiji task --list` prints them (TIME_ZONE).
struct DashboardTime {
    let timeZone: TimeZone

    func instant(milliseconds ms: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = timeZone
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// `3 s`, `2 min 5 s`, `1 h 4 min`, `2 d 3 h`; under a second with milliseconds (`250 ms`, `1.250 s`).
    static func span(milliseconds ms: Int64) -> String {
        let ms = max(0, ms)
        if ms < 1000 { return "\(ms) ms" }
        if ms < 10_000 { return String(format: "%.3f s", Double(ms) / 1000) }
        let s = ms / 1000
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        if s < 86400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86400) d \(s % 86400 / 3600) h"
    }

    /// A schedule as a sentence fragment: `every 5 seconds`, `on Monday, Friday at 22:00`, `cron */5 * * * *`.
    func schedule(_ spec: ScheduleSpec) -> String {
        var text: String
        switch spec.schedule {
        case .every(let n, let unit): text = n == 1 ? "every " + String(unit.rawValue.dropLast()) : "every \(n) \(unit.rawValue)"
        case .weekly(let days, let time): text = "on " + days.map(\.description).joined(separator: ", ") + " at \(time)"
        case .cron(let expression): text = "cron " + expression.source
        case .once(let at): text = "once at " + instant(milliseconds: at * 1000)
        }
        if let zone = spec.timeZone { text += " (\(zone))" }
        if spec.jitterSeconds > 0 { text += ", jitter up to \(spec.jitterSeconds) s" }
        return text
    }
}
