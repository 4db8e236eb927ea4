import Glibc
import ReplicaCore

/// One piece of a streamed response body.
public enum BodyPart {
    /// Bytes already in memory, such as an archive's headers.
    case bytes([UInt8])
    /// `length` bytes of the file at `path`, starting at byte `offset`.
    case file(path: String, offset: UInt64, length: UInt64)
}

/// Sends a response body assembled from parts, in order: bytes as given and files read one piece at a time on
/// the thread pool, each read waiting for the previous write to drain. Memory stays at one piece whatever the
/// total. Small byte parts are gathered with the data that follows them, so an archive with many small
/// headers does not become many small writes.
///
/// The length was promised in the head before the first part was read, so a file that cannot be opened or
/// ends early cannot be reported to the client any more: the connection is dropped and the failure logged.
final class PartStreamer {
    private let exchange: HTTPExchange
    private let pool: WorkPool
    private let next: () -> BodyPart?
    private var pending: [UInt8] = []
    private var file: Int32 = -1
    private var filePath = ""
    private var fileOffset: UInt64 = 0
    private var fileRemaining: UInt64 = 0
    static let pieceSize = 256 * 1024

    init(exchange: HTTPExchange, pool: WorkPool, next: @escaping () -> BodyPart?) {
        self.exchange = exchange
        self.pool = pool
        self.next = next
    }

    func start() { pump() }

    private func pump() {
        guard !exchange.aborted, !exchange.isHead else { return finish() }
        if file >= 0 { return readPiece() }
        while let part = next() {
            switch part {
            case .bytes(let bytes):
                pending.append(contentsOf: bytes)
                if pending.count >= PartStreamer.pieceSize { return flush() }
            case .file(let path, let offset, let length):
                guard length > 0 else { continue }
                return open(path, offset: offset, length: length)
            }
        }
        guard pending.isEmpty else { return flush() }
        finish()
    }

    private func flush() {
        let bytes = pending
        pending = []
        exchange.write(bytes) { [self] in pump() }
    }

    private func open(_ path: String, offset: UInt64, length: UInt64) {
        pool.run({ Glibc.open(path, O_RDONLY | O_CLOEXEC) }, completion: { [self] descriptor in
            guard descriptor >= 0 else { return fail("open failed", path: path, code: errno) }
            file = descriptor
            filePath = path
            fileOffset = offset
            fileRemaining = length
            pump()
        })
    }

    private func readPiece() {
        let count = Int(min(UInt64(PartStreamer.pieceSize), fileRemaining))
        let descriptor = file, offset = off_t(fileOffset)
        var carried = pending
        pending = []
        pool.run({ () -> (bytes: [UInt8], error: Int32) in
            let start = carried.count
            carried += [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let n = carried.withUnsafeMutableBytes {
                    pread(descriptor, $0.baseAddress! + start + filled, count - filled, offset + off_t(filled))
                }
                if n < 0 && errno == EINTR { continue }
                // A file shorter than promised is as fatal as a failed read: the length is already sent.
                if n <= 0 { return (carried, n < 0 ? errno : ENODATA) }
                filled += n
            }
            return (carried, 0)
        }, completion: { [self] result in
            guard result.error == 0 else {
                return fail("read failed", path: filePath, code: result.error)
            }
            fileOffset += UInt64(count)
            fileRemaining -= UInt64(count)
            if fileRemaining == 0 { closeFile() }
            exchange.write(result.bytes) { [self] in pump() }
        })
    }

    private func fail(_ message: String, path: String, code: Int32) {
        exchange.logger.error("streamed response cut short: \(message)",
                              ["file.path": path, "errno": "\(code)"])
        closeFile()
        exchange.connection?.close()
    }

    private func finish() {
        closeFile()
        exchange.endResponse()
    }

    private func closeFile() {
        guard file >= 0 else { return }
        let descriptor = file
        file = -1
        pool.run({ Glibc.close(descriptor) }, completion: { _ in })
    }
}

extension HTTPExchange {
    /// Streams a body of exactly `contentLength` bytes made of `parts`, which `next` hands out one at a time
    /// (nil when done); files are read on `pool`. The parts must add up to `contentLength`.
    public func respondParts(_ status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(),
                             contentLength: UInt64, pool: WorkPool, next: @escaping () -> BodyPart?) {
        guard !hasResponded else { return }
        beginResponse(status, headers: headers, contentLength: contentLength)
        PartStreamer(exchange: self, pool: pool, next: next).start()
    }
}
