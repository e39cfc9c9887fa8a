import Foundation
import KeijiBus
import KeijiCore

/// Delivers a command: through the bus to the running scheduler (acknowledged once durable in the journal),
/// or, when no scheduler is connected, straight into the journal through Core. Never silently dropped.
///
/// The bus must first prove it is ours (``BusClient`` runs the handshake). An endpoint that fails it (another
/// user's bus, or anything squatting on a TCP port) is treated as no bus at all: it is told nothing, the CLI
/// says so in one line, and the command takes the offline path into this user's journal.
struct CommandSender {
    let workspace: Workspace
    let settings: Settings

    struct Delivery {
        var lsn: UInt64
        var viaScheduler: Bool
        var description: String { viaScheduler ? "journal LSN \(lsn), acknowledged by the scheduler" : "journal LSN \(lsn), written offline" }
    }

    /// How long a command waits for a running scheduler to connect to a running bus before the CLI gives up:
    /// the link retries every 2 s at most, and its handshake took over 10 s on a 2-core machine at load 20.
    static let linkWait: Duration = .seconds(30)

    /// `creating`: see ``OfflineCommands/submit(_:creating:workspace:settings:options:)``; through the bus, see
    /// ``BusRequest/create``. Through the bus the view the CLI checked is the scheduler's, written before it
    /// acknowledges each command.
    func send(_ event: JournalEntry.Event, creating: Bool = false) async throws -> Delivery {
        let deadline = ContinuousClock.now + Self.linkWait
        var waiting = false
        while true {
            let viaBus = try await sendThroughBus(event, creating: creating)
            if case .delivered(let delivery) = viaBus { return delivery }
            do {
                let lsn = try await JournalTurn.waiting(in: workspace) {
                    try await OfflineCommands.submit(event, creating: creating, workspace: workspace, settings: settings,
                                                     repaired: Console.journalRepaired, viewBehind: { reason in
                        Console.progress("warning: the command is journaled, but the query view could not be updated (\(reason)); "
                                         + "`keiji task --list` shows it once the next keiji command or the scheduler's start catches the view up")
                    })
                }
                return Delivery(lsn: lsn, viaScheduler: false)
            } catch let error as KeijiError where error.code == .journalHeld {
                // The journal is locked and a scheduler runs (``JournalTurn`` waited out other keiji calls). If the bus is up, the scheduler's link is not connected
                // yet (it was just started, or the bus was): ask again until it is.
                if case .noToken = viaBus {
                    // The bus may well be up: without the token the CLI cannot prove it is its owner's.
                    throw CLIError("the scheduler is running but \(workspace.busTokenFile) is missing or empty, so keiji cannot "
                                   + "authenticate to keiji-bus; `keiji system --restart` makes a new token for the services")
                }
                guard case .noScheduler = viaBus else { throw CLIError(unreachableBusAdvice(proofRefused: viaBus.proofRefused)) }
                guard ContinuousClock.now < deadline else {
                    throw CLIError("the scheduler is running but has not connected to keiji-bus within \(Self.linkWait); "
                                   + "see `keiji system --logs --scheduler`, then retry")
                }
                if !waiting {
                    Console.progress("the scheduler is running but not connected to keiji-bus yet; waiting for it…")
                    waiting = true
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private enum BusOutcome {
        case delivered(Delivery)
        /// Our bus answered `offline`: no scheduler is connected to it.
        case noScheduler
        /// No bus of ours answers (none runs, or the endpoint is not ours: `proofRefused`).
        case noBus(proofRefused: Bool)
        /// `~/.keiji/bus.token` is missing or empty: nothing was sent.
        case noToken

        var proofRefused: Bool { if case .noBus(let refused) = self { refused } else { false } }
    }

    /// Why a running scheduler cannot be reached through the bus, and what helps. A keiji-bus of this workspace that
    /// runs but is not at the endpoint settings.conf names now, or does not accept bus.token, was started with other
    /// settings or another token: `keiji system --start --bus` would only say "already running".
    private func unreachableBusAdvice(proofRefused: Bool) -> String {
        guard let bus = try? ServiceControl(workspace: workspace).runningPID(.bus) else {
            return "the scheduler is running but not reachable through keiji-bus; start the bus with `keiji system --start --bus` and retry"
        }
        if proofRefused {
            return "the scheduler is running but keiji-bus (pid \(bus)) does not accept \(workspace.busTokenFile), which changed since "
                + "the services started (or settings.conf's bus settings did); restart them: keiji system --restart"
        }
        let endpoint = BusEndpoints.resolve(workspace, settings: settings).push
        return "the scheduler is running but keiji-bus (pid \(bus)) is not at \(endpoint): settings.conf's BUS_TRANSPORT or bus "
            + "ports differ from the running bus's; restart the services to apply them: keiji system --restart"
    }

    private func sendThroughBus(_ event: JournalEntry.Event, creating: Bool) async throws -> BusOutcome {
        guard let token = try? String(contentsOfFile: workspace.busTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              !token.isEmpty
        else { return .noToken }
        let request = try BusRequest(id: UUID().uuidString.lowercased(), event: event, creating: creating)
        let endpoint = BusEndpoints.resolve(workspace, settings: settings).push
        do {
            let reply = try await BusClient(endpoint: endpoint, token: token).send(request)
            if reply.ok, let lsn = reply.lsn { return .delivered(Delivery(lsn: lsn, viaScheduler: true)) }
            if reply.code == .unacknowledged { throw CommandFateUnknown(reply.error ?? "the scheduler went away before acknowledging the command") }
            if reply.code == .unchanged { throw KeijiError(.unchanged, reply.error ?? "the command would change nothing") }
            if reply.code == .exists { throw KeijiError(.alreadyExists, reply.error ?? "the task already exists") }
            if reply.code != .offline { throw CLIError(reply.error ?? "the scheduler refused the command") }
            return .noScheduler
        } catch let error as BusAuthenticationFailure {
            // Not our bus: it got nothing. The journal lock says whether our scheduler runs anyway.
            Console.progress("warning: \(error.message); using the journal directly")
            return .noBus(proofRefused: true)
        } catch let error as KeijiError where error.code == .unchanged || error.code == .alreadyExists {
            throw error  // answered: the command was not journaled
        } catch let error as KeijiError where error.code == .unavailable {
            // No bus, or one that did not answer the handshake in time (it was sent nothing but a hello):
            // the journal lock says whether a scheduler runs anyway.
            return .noBus(proofRefused: false)
        } catch let error as KeijiError {
            // The command reached the bus but its fate is unknown: applying it again could double it.
            throw CommandFateUnknown(error.message)
        }
    }
}

/// The command reached the bus but no answer came back: it may have been applied. Whoever created files for
/// it keeps them (a saved task needs its folder), unlike after a refusal.
struct CommandFateUnknown: Error, CustomStringConvertible {
    /// `EX_TEMPFAIL`: with status 1, as a refusal, a script read "not applied" of a command a stalled scheduler then
    /// applied. 75 says "maybe": look (`task --get`, `journal dump`) before sending it again, which could double it.
    static let exitStatus: Int32 = 75

    let description: String
    init(_ message: String) { description = message }
}
