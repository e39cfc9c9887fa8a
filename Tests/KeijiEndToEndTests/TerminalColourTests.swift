import Foundation
import Testing

/// Colour on a terminal: `error:` is red on a terminal (a pseudo-terminal from `script` here), but not for
/// `TERM=dumb` (Emacs' shell and compile buffers), which showed `^[[31merror:^[[0m`.
struct TerminalColourTests {
    typealias Session = WalkthroughTests.Session

    @Test func aDumbTerminalGetsNoColour() async throws {
        let s = try Session()
        defer { s.cleanUp() }
        #expect(try await s.keiji("init").status == 0)
        for (term, red) in [("xterm", true), ("dumb", false)] {
            // The terminal's output, stderr with it, comes out on script's stdout.
            s.launcher = ["/bin/sh", "-c", #"exec env -u NO_COLOR TERM="$0" script -qec "$*" /dev/null"#, term]
            let r = try await s.keiji("task", "--get", "--name=nope")
            #expect(r.stdout.contains("error:") && r.stdout.contains("\u{1B}[31m") == red, "TERM=\(term): \(r.stdout.debugDescription)")
        }
    }
}
