import KeijiBus
import KeijiCore
import KeijiJournal

extension SchedulerEngine {
    /// Answers one command relayed by keiji-bus: the reply is `ok` with the command's LSN only once the
    /// record is durable (``submit(_:)`` returns after the fsync), so an acknowledged command survives a
    /// crash. Every failure becomes a `rejected` reply with the same one-line message the CLI would print
    /// offline; the bus link never sees a thrown error.
    public func handle(_ request: BusRequest) async -> BusReply {
        let reply: BusReply
        do {
            let lsn = try await submit(try request.event(), creating: request.create == true)
            reply = .acknowledged(request.id, lsn: lsn)
        } catch let error as KeijiError {
            reply = .failure(request.id, error.code == .unchanged ? .unchanged : error.code == .alreadyExists ? .exists : .rejected, error.message)
        } catch let error as JournalError where error.code == .failed {
            // The command's own append failed the journal: the engine has stopped, and the reply says what to do.
            reply = .failure(request.id, .rejected, JournalFailureStop.refusal(error.description))
        } catch {
            reply = .failure(request.id, .rejected, "\(error)")
        }
        configuration.metrics?.busCommandAnswered(acknowledged: reply.ok)
        return reply
    }
}
