import CLibUV
import Glibc
import ReplicaCore

/// Sends a file as a response body, one piece at a time: each read waits for the previous write to drain,
/// so memory stays at one piece however large the file. File calls run on libuv's thread pool.
final class FileStreamer {
    private let exchange: HTTPExchange
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let path: String
    private let status: HTTPStatus
    private let headers: HTTPHeaders
    private let failure: (UVError) -> Void
    private var file: uv_file = -1
    private var remaining: UInt64 = 0
    private var offset: Int64 = 0
    private var reading = false
    private let piece: UnsafeMutableRawPointer
    private static let pieceSize = 256 * 1024

    init(exchange: HTTPExchange, loop: UnsafeMutablePointer<uv_loop_t>, path: String, status: HTTPStatus,
         headers: HTTPHeaders, failure: @escaping (UVError) -> Void) {
        self.exchange = exchange
        self.loop = loop
        self.path = path
        self.status = status
        self.headers = headers
        self.failure = failure
        piece = UnsafeMutableRawPointer.allocate(byteCount: FileStreamer.pieceSize, alignment: 16)
    }

    deinit { piece.deallocate() }

    func start() {
        let request = makeRequest()
        let status = uv_fs_open(loop, request, path, O_RDONLY | O_CLOEXEC, 0) { request in
            FileStreamer.take(request).opened(Int32(request!.pointee.result))
        }
        if status < 0 { FileStreamer.take(request).opened(status) }
    }

    private func opened(_ result: Int32) {
        guard result >= 0 else { return failure(UVError(result, "open \(path)")) }
        file = result
        let request = makeRequest()
        let status = uv_fs_fstat(loop, request, file) { request in
            let streamer = FileStreamer.take(request, cleanup: false)
            let result = Int32(request!.pointee.result)
            let stat = request!.pointee.statbuf
            uv_fs_req_cleanup(request)
            request!.deallocate()
            streamer.measured(result, stat)
        }
        if status < 0 { FileStreamer.take(request).measured(status, uv_stat_t()) }
    }

    private func measured(_ result: Int32, _ stat: uv_stat_t) {
        guard result >= 0, stat.st_mode & 0o170000 == 0o100000 else {
            closeFile()
            return failure(UVError(result < 0 ? result : -Int32(EISDIR), "stat \(path)"))
        }
        remaining = stat.st_size
        exchange.beginResponse(status, headers: headers, contentLength: remaining)
        // A write to a connection that went away never completes; the abort is what closes the file then,
        // at once or when the read in flight returns.
        let previous = exchange.onAbort
        exchange.onAbort = { [self] in
            previous?()
            if !reading { finish() }
        }
        readNext()
    }

    private func readNext() {
        guard remaining > 0, !exchange.isHead, !exchange.aborted else { return finish() }
        reading = true
        let request = makeRequest()
        var buffer = uv_buf_init(piece.assumingMemoryBound(to: CChar.self),
                                 UInt32(min(UInt64(FileStreamer.pieceSize), remaining)))
        let status = uv_fs_read(loop, request, file, &buffer, 1, offset) { request in
            FileStreamer.take(request).didRead(Int(request!.pointee.result))
        }
        if status < 0 { FileStreamer.take(request).didRead(Int(status)) }
    }

    private func didRead(_ count: Int) {
        reading = false
        if exchange.aborted { return finish() }
        guard count > 0 else {
            // The file shrank or failed under us: the promised length cannot be met, so drop the connection.
            exchange.logger.error("file read failed mid-response", ["file.path": path, "uv.code": "\(count)"])
            closeFile()
            exchange.connection?.close()
            return
        }
        offset += Int64(count)
        remaining -= UInt64(min(UInt64(count), remaining))
        let bytes = Array(UnsafeRawBufferPointer(start: piece, count: count))
        exchange.write(bytes) { [self] in readNext() }
    }

    private func finish() {
        closeFile()
        exchange.endResponse()
    }

    private func closeFile() {
        guard file >= 0 else { return }
        let request = makeRequest()
        let status = uv_fs_close(loop, request, file) { request in _ = FileStreamer.take(request) }
        if status < 0 { _ = FileStreamer.take(request) }
        file = -1
    }

    // Each request retains the streamer until its callback runs.
    private func makeRequest() -> UnsafeMutablePointer<uv_fs_t> {
        let request = UnsafeMutablePointer<uv_fs_t>.allocate(capacity: 1)
        request.initialize(to: uv_fs_t())
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        return request
    }

    private static func take(_ request: UnsafeMutablePointer<uv_fs_t>?, cleanup: Bool = true) -> FileStreamer {
        let streamer = Unmanaged<FileStreamer>.fromOpaque(request!.pointee.data).takeRetainedValue()
        if cleanup {
            uv_fs_req_cleanup(request)
            request!.deallocate()
        }
        return streamer
    }
}
