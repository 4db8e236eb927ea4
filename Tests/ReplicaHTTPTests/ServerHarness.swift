import CLibUV
import Foundation
import ReplicaCore
import ReplicaTestSupport
@testable import ReplicaHTTP

/// Runs an `HTTPServer` on its own loop thread with a closure for a delegate, the way the gateway runs it.
final class ServerHarness: HTTPServerDelegate, @unchecked Sendable {
    let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
    private var server: HTTPServer!
    private let stopHandle = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
    private let thread: Thread
    private let finished = DispatchSemaphore(value: 0)
    private let handler: (HTTPExchange, ServerHarness) -> Void
    private(set) var port = 0
    let log = CapturingSink()

    init(options: HTTPServerOptions = HTTPServerOptions(), tls: TLSContext? = nil,
         handler: @escaping (HTTPExchange, ServerHarness) -> Void) throws {
        self.handler = handler
        uv_loop_init(loop)
        thread = Thread {}
        server = try HTTPServer(loop: loop, options: options, tls: tls,
                                logger: Logger(sink: log, minimumLevel: .debug))
        server.delegate = self
        port = try server.listen(host: "127.0.0.1", port: 0)
        stopHandle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_async_init(loop, stopHandle) { handle in
            let harness = Unmanaged<ServerHarness>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
            harness.server.shutdown {
                uv_close(UnsafeMutableRawPointer(harness.stopHandle).assumingMemoryBound(to: uv_handle_t.self), nil)
            }
        }
        nonisolated(unsafe) let loop = self.loop
        let done = finished
        Thread.detachNewThread {
            uv_run(loop, UV_RUN_DEFAULT)
            done.signal()
        }
    }

    func serve(_ exchange: HTTPExchange) { handler(exchange, self) }

    /// Stops the server gracefully and waits for the loop to end.
    func stop(timeout: Double = 20) {
        uv_async_send(stopHandle)
        _ = finished.wait(timeout: .now() + timeout)
        uv_loop_close(loop)
    }

    /// Runs `work` on the loop thread after `seconds`.
    func after(_ seconds: Double, _ work: @escaping () -> Void) {
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passRetained(Box(work)).toOpaque()
        uv_timer_start(timer, { timer in
            let box = Unmanaged<Box>.fromOpaque(timer!.pointee.data).takeRetainedValue()
            uv_close(UnsafeMutableRawPointer(timer!).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
            box.work()
        }, UInt64(seconds * 1000), 0)
    }

    /// Open connections as the server counts them (read on the loop thread's behalf; tests only poll it).
    var connectionCount: Int { server.connectionCount }

    private final class Box {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }
}
