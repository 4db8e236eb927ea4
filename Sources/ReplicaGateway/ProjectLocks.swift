/// Runs at most `limit` jobs at once, on the loop thread; the others wait in the order they came. A job is a
/// closure that calls `done` when it is over (after its pool work, typically).
final class ConcurrencyLimit {
    private let limit: Int
    private var running = 0
    private var waiting: [(@escaping () -> Void) -> Void] = []

    init(_ limit: Int) {
        precondition(limit >= 1, "a limit admits at least one job")
        self.limit = limit
    }

    /// Nothing runs and nothing waits.
    var isIdle: Bool { running == 0 && waiting.isEmpty }

    func run(_ body: @escaping (_ done: @escaping () -> Void) -> Void) {
        guard running < limit else { return waiting.append(body) }
        running += 1
        var released = false
        body { [self] in
            guard !released else { return }
            released = true
            running -= 1
            if !waiting.isEmpty { run(waiting.removeFirst()) }
        }
    }
}

/// Runs the changes to one project one after another, on the loop thread: a rename, a delete and the commit
/// of an upload to the same project never overlap on disk.
final class ProjectLocks {
    private var locks: [String: ConcurrencyLimit] = [:]

    /// Calls `body` once no earlier change to the project is in flight; `body` calls `done` when it is over.
    func run(_ projectID: String, _ body: @escaping (_ done: @escaping () -> Void) -> Void) {
        let lock = locks[projectID] ?? ConcurrencyLimit(1)
        locks[projectID] = lock
        lock.run { [self] done in
            body {
                done()
                if lock.isIdle { self.locks[projectID] = nil }
            }
        }
    }
}
