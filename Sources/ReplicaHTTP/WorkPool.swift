import CLibUV

/// Runs blocking work (file system calls, decoding) on libuv's thread pool and hands the result back on the
/// loop thread, so the loop itself never waits on a disk.
///
/// `work` runs on a pool thread and must not touch loop-owned state; `completion` runs on the loop thread.
/// libuv's pool has `UV_THREADPOOL_SIZE` threads (4 unless the environment says otherwise), shared with its
/// own file requests.
public final class WorkPool {
    private let loop: UnsafeMutablePointer<uv_loop_t>

    public init(loop: UnsafeMutablePointer<uv_loop_t>) {
        self.loop = loop
    }

    /// Queues `work`; `completion` receives what it returned. If libuv refuses the request (it only does for
    /// a loop being closed), the work runs inline instead, so a completion is never lost.
    public func run<T>(_ work: @escaping () -> T, completion: @escaping (T) -> Void) {
        let item = WorkItem()
        var result: T?
        item.work = { result = work() }
        item.completion = { completion(result!) }
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        request.initialize(to: uv_work_t())
        request.pointee.data = Unmanaged.passRetained(item).toOpaque()
        let status = uv_queue_work(loop, request, { request in
            Unmanaged<WorkItem>.fromOpaque(request!.pointee.data).takeUnretainedValue().work?()
        }, { request, _ in
            let item = Unmanaged<WorkItem>.fromOpaque(request!.pointee.data).takeRetainedValue()
            request!.deallocate()
            item.finish()
        })
        if status < 0 {
            Unmanaged<WorkItem>.fromOpaque(request.pointee.data).release()
            request.deallocate()
            item.work?()
            item.finish()
        }
    }

    /// Like `run`, for work that throws: the completion gets a `Result`.
    public func run<T>(throwing work: @escaping () throws -> T, completion: @escaping (Result<T, Error>) -> Void) {
        run({ Result { try work() } }, completion: completion)
    }
}

/// One queued piece of work and its completion; retained by the request until the completion has run.
private final class WorkItem {
    var work: (() -> Void)?
    var completion: (() -> Void)?

    func finish() {
        let completion = self.completion
        work = nil
        self.completion = nil
        completion?()
    }
}
