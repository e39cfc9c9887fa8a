import Foundation

/// `/events` and `/static/live.js`: live updates without a long-lived stream. Each `/events` request waits
/// until the version it watches moves past the `Last-Event-ID` the browser sends back, at most ``longestWait``,
/// then answers one server-sent event and ends. The version is the engine's applied LSN (a run started or
/// finished, a command landed), and on a task's page (`/events?task=NAME`) also the size of the task's log, so
/// the log tail follows a long run's lines as they arrive;
/// `EventSource` reconnects after `retry`. The script asks for `events` relative to the page's `<base href>`, the
/// session's path. A finite response fits the server's route timeout and holds no
/// connection open when nobody looks.
enum LiveUpdates {
    static let longestWait: Duration = .seconds(10)

    /// The body of one `/events` answer: `version` is `<lsn>` or `<lsn>.<log size>`, digits and a dot only (so
    /// the id needs no escaping). The first request (no id yet) gets the current version at once.
    static func events(lastEventID: String?, version: @Sendable () async -> String) async -> String {
        var current = await version()
        if let seen = lastEventID, !seen.isEmpty {
            let deadline = ContinuousClock.now + longestWait
            while current == seen, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(250))
                current = await version()
            }
            if current == seen { return "retry: 1000\n: nothing changed\n\n" }
            return "retry: 1000\nid: \(current)\nevent: change\ndata: \"\(current)\"\n\n"
        }
        return "retry: 1000\nid: \(current)\nevent: hello\ndata: \"\(current)\"\n\n"
    }

    /// On a `change` event, fetches the page again and swaps in its `data-live` sections (forms outside them,
    /// such as the task's actions, are left alone). Without JavaScript the pages are the same, only static.
    static let script = """
        // keiji dashboard: live updates from /events (server-sent events). Pages work without this file.
        (function () {
          if (!window.EventSource || !document.querySelector("[data-live]")) return;
          var task = document.querySelector("[data-task]");
          var source = new EventSource("events" + (task ? "?task=" + encodeURIComponent(task.getAttribute("data-task")) : ""));
          // A change that comes while a fetch is on its way is fetched again after it (dropped, a run's last log
          // line and its end could leave the page showing the run going on).
          var busy = false, again = false;
          function refresh() {
            if (busy) { again = true; return; }
            busy = true;
            again = false;
            fetch(location.href, { credentials: "same-origin" }).then(function (r) {
              return r.ok ? r.text() : null;
            }).then(function (text) {
              if (!text) return;
              var fresh = new DOMParser().parseFromString(text, "text/html");
              document.querySelectorAll("[data-live]").forEach(function (old) {
                var replacement = fresh.getElementById(old.id);
                if (replacement) old.replaceWith(document.importNode(replacement, true));
              });
            }).finally(function () {
              busy = false;
              if (again) refresh();
            });
          }
          source.addEventListener("change", refresh);
        })();

        """
}
