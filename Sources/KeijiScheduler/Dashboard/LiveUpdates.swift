import Foundation

/// `/events` and `/static/live.js`: live updates without a long-lived stream. Each `/events` request waits
/// until the engine's applied LSN moves past the `Last-Event-ID` the browser sends back (a run started or
/// finished, a command landed), at most ``longestWait``, then answers one server-sent event and ends;
/// `EventSource` reconnects after `retry`. A finite response fits FlyingFox's request timeout and holds no
/// connection open when nobody looks.
enum LiveUpdates {
    static let longestWait: Duration = .seconds(10)

    /// The body of one `/events` answer. The first request (no id yet) gets the current LSN at once.
    static func events(lastEventID: String?, appliedLSN: @Sendable () async -> UInt64) async -> String {
        var lsn = await appliedLSN()
        if let seen = lastEventID.flatMap({ UInt64($0) }) {
            let deadline = ContinuousClock.now + longestWait
            while lsn == seen, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(250))
                lsn = await appliedLSN()
            }
            if lsn == seen { return "retry: 1000\n: nothing changed\n\n" }
            return "retry: 1000\nid: \(lsn)\nevent: change\ndata: {\"lsn\":\(lsn)}\n\n"
        }
        return "retry: 1000\nid: \(lsn)\nevent: hello\ndata: {\"lsn\":\(lsn)}\n\n"
    }

    /// On a `change` event, fetches the page again and swaps in its `data-live` sections (forms outside them,
    /// such as the task's actions, are left alone). Without JavaScript the pages are the same, only static.
    static let script = """
        // keiji dashboard: live updates from /events (server-sent events). Pages work without this file.
        (function () {
          if (!window.EventSource || !document.querySelector("[data-live]")) return;
          var source = new EventSource("/events");
          var busy = false;
          source.addEventListener("change", function () {
            if (busy) return;
            busy = true;
            fetch(location.href, { credentials: "same-origin" }).then(function (r) {
              return r.ok ? r.text() : null;
            }).then(function (text) {
              if (!text) return;
              var fresh = new DOMParser().parseFromString(text, "text/html");
              document.querySelectorAll("[data-live]").forEach(function (old) {
                var replacement = fresh.getElementById(old.id);
                if (replacement) old.replaceWith(document.importNode(replacement, true));
              });
            }).finally(function () { busy = false; });
          });
        })();

        """
}
