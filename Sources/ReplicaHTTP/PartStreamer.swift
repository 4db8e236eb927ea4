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
/// the thread pool, one piece ahead of the socket: the next read runs while the last piece drains, and no read
/// starts while a piece waits. Memory stays at two pieces whatever the total. Small byte parts are gathered
/// with the data that follows them, so an archive with many small headers does not become many small writes.
///
/// The length was promised in the head before the first part was read, so a file that cannot be opened or
/// ends early cannot be reported to the client any more: the connection is dropped and the failure logged.
final class PartStreamer {
    private let exchange: HTTPExchange
    private let pool: WorkPool
    private let next: () -> BodyPart?
    /// Byte parts gathered to go out with the next write.
    private var pending: [UInt8] = []
    /// A piece read ahead, waiting for the socket.
    private var ready: [UInt8]?
    private var file: Int32 = -1
    private var filePath = ""
    private var fileOffset: UInt64 = 0
    /// Bytes of the current file not yet asked of the disk.
    private var fileUnread: UInt64 = 0
    private var opening = false
    private var reading = false
    private var writing = false
    private var done = false
    static let pieceSize = 256 * 1024

    init(exchange: HTTPExchange, pool: WorkPool, next: @escaping () -> BodyPart?) {
        self.exchange = exchange
        self.pool = pool
        self.next = next
    }

    /// Streams `length` bytes of a file already open as `descriptor`, which the streamer then owns: the file
    /// whose length the head promised is the file sent, even if the path is replaced meanwhile.
    convenience init(exchange: HTTPExchange, pool: WorkPool, openFile descriptor: Int32, path: String,
                     offset: UInt64 = 0, length: UInt64) {
        self.init(exchange: exchange, pool: pool, next: { nil })
        file = descriptor
        filePath = path
        fileOffset = offset
        fileUnread = length
    }

    func start() {
        // A write to a connection that went away never completes; the abort is what ends the stream then.
        let previous = exchange.onAbort
        exchange.onAbort = { [self] in
            previous?()
            pump()
        }
        pump()
    }

    /// Moves everything along that can move: the ready piece to the socket, the next read to the disk (one
    /// piece ahead of the socket, so reading and sending overlap), and the next part once a file is done.
    private func pump() {
        guard !done else { return }
        if exchange.aborted || exchange.isHead {
            // Nothing more will be sent; close only once no read is using the file.
            return reading || opening ? () : finish()
        }
        if !writing, let piece = ready {
            ready = nil
            send(piece)
            // A write that fails at once closes the connection, and the abort ends the stream inside send.
            guard !done else { return }
        }
        if file >= 0 && !reading && ready == nil && fileUnread > 0 { readPiece() }
        if file >= 0 && !reading && fileUnread == 0 { closeFile() }
        guard file < 0, !opening, !reading, ready == nil else { return }
        while let part = next() {
            switch part {
            case .bytes(let bytes):
                pending.append(contentsOf: bytes)
                if pending.count >= PartStreamer.pieceSize && !writing { return send([]) }
            case .file(let path, let offset, let length):
                guard length > 0 else { continue }
                return open(path, offset: offset, length: length)
            }
        }
        guard !writing else { return }
        if !pending.isEmpty { return send([]) }
        finish()
    }

    /// Writes the gathered byte parts and `piece` as one write; the next pump waits for it to drain.
    private func send(_ piece: [UInt8]) {
        var bytes = pending
        pending = []
        bytes.append(contentsOf: piece)
        writing = true
        exchange.write(bytes) { [self] in
            writing = false
            pump()
        }
    }

    private func open(_ path: String, offset: UInt64, length: UInt64) {
        opening = true
        pool.run({ () -> (descriptor: Int32, error: Int32) in
            let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            return (descriptor, descriptor < 0 ? errno : 0)
        }, completion: { [self] result in
            opening = false
            guard result.descriptor >= 0 else { return fail("open failed", path: path, code: result.error) }
            file = result.descriptor
            filePath = path
            fileOffset = offset
            fileUnread = length
            pump()
        })
    }

    private func readPiece() {
        let count = Int(min(UInt64(PartStreamer.pieceSize), fileUnread))
        let descriptor = file, offset = off_t(fileOffset)
        fileOffset += UInt64(count)
        fileUnread -= UInt64(count)
        reading = true
        pool.run({ () -> (bytes: [UInt8], error: Int32) in
            var bytes = [UInt8](repeating: 0, count: count)
            var filled = 0
            while filled < count {
                let n = bytes.withUnsafeMutableBytes {
                    pread(descriptor, $0.baseAddress! + filled, count - filled, offset + off_t(filled))
                }
                if n < 0 && errno == EINTR { continue }
                // A file shorter than promised is as fatal as a failed read: the length is already sent.
                if n <= 0 { return (bytes, n < 0 ? errno : ENODATA) }
                filled += n
            }
            return (bytes, 0)
        }, completion: { [self] result in
            reading = false
            guard result.error == 0 else { return fail("read failed", path: filePath, code: result.error) }
            ready = result.bytes
            pump()
        })
    }

    private func fail(_ message: String, path: String, code: Int32) {
        exchange.logger.error("streamed response cut short: \(message)",
                              ["file.path": path, "errno": "\(code)"])
        done = true
        closeFile()
        exchange.connection?.close()
    }

    private func finish() {
        done = true
        closeFile()
        // After an abort there is no response left to end: the connection is closing.
        if !exchange.aborted { exchange.endResponse() }
    }

    private func closeFile() {
        guard file >= 0 else { return }
        let descriptor = file
        file = -1
        pool.run({ Glibc.close(descriptor) }, completion: { _ in })
    }
}

extension HTTPExchange {
    /// Streams a file from disk in pieces, never holding it whole; calls `failure` (before anything was sent)
    /// when the file cannot be opened or is not a regular file, so the handler can answer 404 or 500.
    ///
    /// With `ranges`, the answer carries `Accept-Ranges`, an `ETag` naming the file's version (size and
    /// modification time) and `Last-Modified`, and honours the request's `Range` (one range of bytes, RFC 9110
    /// 14.2: 206 with `Content-Range`, or 416 past the end), `If-Range` and `If-None-Match`, so an interrupted
    /// download resumes where it stopped and only while the file is the same.
    public func respondFile(path: String, status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(),
                            ranges: Bool = false, failure: @escaping (UVError) -> Void) {
        guard let connection, !hasResponded else { return }
        let pool = WorkPool(loop: connection.server.loop)
        pool.run({ HTTPExchange.openRegularFile(path) }, completion: { [self] opened in
            switch opened {
            case .failure(let error):
                failure(error)
            case .success(let file):
                guard !aborted else { return pool.run({ close(file.descriptor) }, completion: { _ in }) }
                var headers = headers
                var status = status
                var offset: UInt64 = 0, length = file.length
                if ranges {
                    let tag = "\"\(String(file.length, radix: 16))-\(String(file.modifiedNanoseconds, radix: 16))\""
                    headers.replaceOrAdd(name: "Accept-Ranges", value: "bytes")
                    headers.replaceOrAdd(name: "ETag", value: tag)
                    headers.replaceOrAdd(name: "Last-Modified", value: HTTPExchange.httpDate(file.modifiedNanoseconds))
                    if let match = head.headers["If-None-Match"], HTTPExchange.tagList(match, contains: tag) {
                        pool.run({ close(file.descriptor) }, completion: { _ in })
                        headers.remove(name: "Content-Type")
                        return respond(.notModified, headers: headers)
                    }
                    let condition = head.headers["If-Range"]
                    if let range = head.headers["Range"], condition == nil || condition == tag {
                        switch HTTPExchange.byteRange(range, length: file.length) {
                        case .whole:
                            break
                        case .part(let first, let last):
                            status = .partialContent
                            offset = first
                            length = last - first + 1
                            headers.replaceOrAdd(name: "Content-Range", value: "bytes \(first)-\(last)/\(file.length)")
                        case .unsatisfiable:
                            pool.run({ close(file.descriptor) }, completion: { _ in })
                            return respondError(.rangeNotSatisfiable,
                                                "Range not satisfiable: the file has \(file.length) bytes",
                                                headers: ["Content-Range": "bytes */\(file.length)"])
                        }
                    }
                }
                beginResponse(status, headers: headers, contentLength: length)
                PartStreamer(exchange: self, pool: pool, openFile: file.descriptor, path: path, offset: offset,
                             length: length).start()
            }
        })
    }

    /// What a `Range` header asks of a file of `length` bytes.
    enum ByteRange: Equatable {
        /// No range this server serves (not bytes, several ranges, bad syntax): the whole file, as RFC 9110
        /// lets a server answer.
        case whole
        /// Bytes `first` through `last`, both included.
        case part(first: UInt64, last: UInt64)
        /// A range that starts past the end, or an empty suffix: 416.
        case unsatisfiable
    }

    static func byteRange(_ header: String, length: UInt64) -> ByteRange {
        let value = header.trimmingCharacters(in: .whitespaces)
        guard value.lowercased().hasPrefix("bytes="), !value.contains(",") else { return .whole }
        let spec = value.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let start = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let end = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        func number(_ text: String) -> UInt64? {
            text.isEmpty || !text.allSatisfy({ $0.isASCII && $0.isNumber }) ? nil : UInt64(text) ?? UInt64.max
        }
        if start.isEmpty {
            guard let suffix = number(end) else { return .whole }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .part(first: length - min(suffix, length), last: length - 1)
        }
        guard let first = number(start) else { return .whole }
        let last: UInt64
        if end.isEmpty {
            last = length &- 1
        } else {
            guard let requested = number(end), requested >= first else { return .whole }
            last = min(requested, length &- 1)
        }
        guard first < length else { return .unsatisfiable }
        return .part(first: first, last: last)
    }

    /// Whether an `If-None-Match` list names `tag` (`*`, or weak or strong, compared weakly); for every
    /// response with an entity tag, files and thumbnails alike.
    public static func tagList(_ header: String, contains tag: String) -> Bool {
        header.split(separator: ",").contains { candidate in
            let trimmed = candidate.trimmingCharacters(in: .whitespaces)
            return trimmed == "*" || trimmed == tag || trimmed == "W/" + tag
        }
    }

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), from nanoseconds since 1970.
    static func httpDate(_ nanoseconds: Int64) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Opens a regular file for reading and measures it; blocking, for the pool.
    private static func openRegularFile(_ path: String)
        -> Result<(descriptor: Int32, length: UInt64, modifiedNanoseconds: Int64), UVError> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(UVError(-errno, "open \(path)")) }
        var info = stat()
        let measured = fstat(descriptor, &info) == 0
        guard measured, info.st_mode & S_IFMT == S_IFREG else {
            let code = measured ? EISDIR : errno
            close(descriptor)
            return .failure(UVError(-code, "stat \(path)"))
        }
        let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        return .success((descriptor, UInt64(info.st_size), modified))
    }

    /// Streams a body of exactly `contentLength` bytes made of `parts`, which `next` hands out one at a time
    /// (nil when done, and on every call after); files are read on `pool`. The parts must add up to `contentLength`.
    public func respondParts(_ status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(),
                             contentLength: UInt64, pool: WorkPool, next: @escaping () -> BodyPart?) {
        guard !hasResponded else { return }
        beginResponse(status, headers: headers, contentLength: contentLength)
        PartStreamer(exchange: self, pool: pool, next: next).start()
    }
}
