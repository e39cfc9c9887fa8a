/// The first line a scheduler sends on the pull port: `{"hello":"scheduler","token":"…"}`. The bus answers
/// `{"ok":true}` once this connection is the one commands go to (so the scheduler, and tests, know when it
/// is really connected), or `{"ok":false,"code":"unauthorized",…}` and closes.
struct SchedulerHello: Codable, Sendable, Equatable {
    static let role = "scheduler"
    var hello: String
    var token: String?
}
