import Glibc

/// Named places in the store's multi-step changes where the crash tests kill the gateway, to prove that
/// start-up repairs whatever a crash at that step leaves.
///
/// Inert unless `REPLICA_CRASH_AT` names the point: then reaching it sends the process SIGKILL, exactly as
/// an operator's `kill -9` or the OOM killer would, with nothing flushed or cleaned up.
enum CrashPoint {
    private static let armed: String? = getenv("REPLICA_CRASH_AT").map { String(cString: $0) }

    static func reach(_ name: String) {
        guard let armed, armed == name else { return }
        kill(getpid(), SIGKILL)
    }
}

/// Runs the changes to one project one after another, on the loop thread: a rename, a delete and the commit
/// of an upload to the same project never overlap on disk.
final class ProjectLocks {
    private var waiting: [String: [(@escaping () -> Void) -> Void]] = [:]

    /// Calls `body` once no earlier change to the project is in flight; `body` calls `done` when it is over.
    func run(_ projectID: String, _ body: @escaping (_ done: @escaping () -> Void) -> Void) {
        if waiting[projectID] != nil {
            waiting[projectID]!.append(body)
            return
        }
        waiting[projectID] = []
        start(projectID, body)
    }

    private func start(_ projectID: String, _ body: @escaping (@escaping () -> Void) -> Void) {
        var released = false
        body { [self] in
            guard !released else { return }
            released = true
            guard var queue = waiting[projectID], !queue.isEmpty else {
                waiting[projectID] = nil
                return
            }
            let next = queue.removeFirst()
            waiting[projectID] = queue
            start(projectID, next)
        }
    }
}
