import Foundation
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// SIGINT, SIGHUP and SIGTERM held back while `keiji system --restart` stops and starts the services: Ctrl-C during
/// the scheduler's grace wait, or a closed SSH session, ended the CLI after the stop and before the start, and the
/// services stayed down with nothing saying so. Each such signal now says on stderr what the restart is doing and
/// that it finishes first; the first one then ends the call once the start is over (``Console/end(_:)``), as it
/// would have ended it, so a script that was interrupted stops there. One that comes while the restart still waits
/// for another call's services lock, nothing stopped yet, ends it at once, the services untouched. A signal the CLI was started with ignored
/// stays ignored. `keiji system --start` holds them too, and on one stops again what it had started (``interrupted``);
/// `keiji task --build` passes them on to `swift build` and waits for it (``passOn(to:)``).
struct HeldInterrupts {
    private static let signals = [SIGINT, SIGHUP, SIGTERM]
    /// The first signal held, 0 for none.
    private static let held = Atomic<Int32>(0)
    /// The line a held signal prints, made before: a signal handler may not allocate.
    nonisolated(unsafe) private static let line = Atomic<UnsafeMutablePointer<CChar>?>(nil)
    /// Where a held signal is also sent, as `kill(2)` takes it (`-group` for a process group), 0 for nowhere.
    private static let target = Atomic<Int32>(0)

    private var previous: [(Int32, sigaction)] = []

    /// Holds the signals from now until ``release()``.
    static func hold() -> HeldInterrupts {
        var interrupts = HeldInterrupts()
        for number in signals {
            var old = sigaction()
            sigaction(number, nil, &old)
            if unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let code = errno
                _ = HeldInterrupts.held.compareExchange(expected: 0, desired: number, ordering: .relaxed)
                if let line = HeldInterrupts.line.load(ordering: .acquiring) { _ = write(STDERR_FILENO, line, strlen(line)) }
                if case let target = HeldInterrupts.target.load(ordering: .relaxed), target != 0 { kill(target, number) }
                errno = code
            }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(number, &action, nil)
            interrupts.previous.append((number, old))
        }
        return interrupts
    }

    /// What a held signal says the restart is doing now (`stopping the scheduler`). Each line is kept for the
    /// process's life: a handler may be printing the one it replaces.
    func now(_ doing: String) {
        say("the restart finishes first, or the services would stay down (now \(doing))")
    }

    /// What a held signal says from now on, after `warning: interrupted: `.
    func say(_ text: String) {
        Self.line.store(strdup(Console.paint("warning: interrupted: " + text, 33) + "\n"), ordering: .releasing)
    }

    /// A held signal prints nothing from now on: the call ends on it with its own error line (a restart that has
    /// stopped nothing yet).
    func sayNothing() {
        Self.line.store(nil, ordering: .releasing)
    }

    /// From now on each signal held is sent on to the child `pid` too, and to its process group when it leads one
    /// (Foundation's `Process` gives each child a group of its own, which a Ctrl-C at the terminal does not reach);
    /// one held already is sent at once. 0: to nobody.
    func passOn(to pid: pid_t) {
        let target = pid > 0 && getpgid(pid) == pid ? -pid : pid
        Self.target.store(target, ordering: .relaxed)
        if case let number = Self.held.load(ordering: .relaxed), number != 0, target != 0 { kill(target, number) }
    }

    /// Whether a signal was held.
    static var interrupted: Bool { held.load(ordering: .relaxed) != 0 }

    /// The signals act again as before `hold()`; one held meanwhile still ends the call at its end.
    func release() {
        for (number, old) in previous {
            var old = old
            sigaction(number, &old, nil)
        }
    }

    /// Ends the process by the signal held, if one was.
    static func endIfOneWasHeld() {
        let number = held.load(ordering: .relaxed)
        guard number != 0 else { return }
        signal(number, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(number)
    }
}
