import ReplicaCore
import ReplicaProtocol

/// One request and its response, as a handler sees them. Every call must be made on the server's loop thread.
///
/// The body arrives as a stream once the handler asks for it (`readBody`), so uploads are never held in memory
/// whole; until then, at most one read's worth is held and the socket is not read. The response is either one
/// buffer (`respond`), a file streamed from disk (`respondFile`), or a stream the handler writes (`beginResponse`,
/// `write`, `endResponse`).
public final class HTTPExchange {
    public let head: HTTPRequestHead
    /// The client's address as text, "127.0.0.1" or "::1".
    public let remoteAddress: String
    /// An identifier for this request, in logs and in the `X-Request-Id` response header.
    public let requestID: String
    /// A logger that carries `request.id`; made on first use, since most requests never log but the access line.
    public private(set) lazy var logger: Logger = baseLogger.with("request.id", requestID)
    private let baseLogger: Logger
    /// Called once if the connection goes away before the response has been sent in full.
    public var onAbort: (() -> Void)?

    weak var connection: HTTPConnection?
    let startedAt: UInt64
    var dispatched = false

    // Body state.
    var bodyHandler: ((UnsafeRawBufferPointer) -> Void)?
    var bodyEndHandler: (() -> Void)?
    var bodyPaused = false
    var heldBody: [UInt8] = []
    var messageComplete = false
    var endDelivered = false
    var bodyBytesReceived: UInt64 = 0
    var continueSent = false

    // Response state.
    var responseStatus: HTTPStatus?
    var responseFraming: ResponseFraming = .noBody
    var responseEnded = false
    var bodyBytesSent: UInt64 = 0
    var aborted = false

    init(head: HTTPRequestHead, connection: HTTPConnection, requestID: String, logger: Logger, now: UInt64) {
        self.head = head
        self.connection = connection
        self.remoteAddress = connection.remoteAddress
        self.requestID = requestID
        self.baseLogger = logger
        self.startedAt = now
    }

    /// True for `HEAD`: the response carries headers only.
    public var isHead: Bool { head.method == .head }

    /// The response has begun (its head is queued).
    public var hasResponded: Bool { responseStatus != nil }

    // MARK: Body

    /// Starts the body's delivery: chunks in order, then `end`. Sends `100 Continue` if the client waits for it.
    public func readBody(_ onChunk: @escaping (UnsafeRawBufferPointer) -> Void, end: @escaping () -> Void) {
        precondition(bodyHandler == nil, "readBody called twice")
        bodyHandler = onChunk
        bodyEndHandler = end
        connection?.bodyWanted(self)
    }

    /// Collects a small body in memory, failing once it passes `limit` bytes.
    public func collectBody(limit: Int, _ done: @escaping (Result<[UInt8], BodyTooLarge>) -> Void) {
        if case .length(let n) = head.framing, n > UInt64(limit) {
            done(.failure(BodyTooLarge(limit: limit)))
            return
        }
        var collected: [UInt8] = []
        var failed = false
        readBody({ chunk in
            guard !failed else { return }
            if collected.count + chunk.count > limit {
                failed = true
                done(.failure(BodyTooLarge(limit: limit)))
                return
            }
            collected.append(contentsOf: chunk)
        }, end: {
            if !failed { done(.success(collected)) }
        })
    }

    /// Stops reading the body until `resumeBody()`; the client is held back by TCP flow control.
    public func pauseBody() { bodyPaused = true }

    public func resumeBody() {
        guard bodyPaused else { return }
        bodyPaused = false
        connection?.bodyWanted(self)
    }

    // MARK: Response

    /// Sends a whole response from one buffer.
    public func respond(_ status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        guard let connection, !hasResponded else { return }
        let framing = connection.framing(for: self, status: status, contentLength: UInt64(body.count))
        responseStatus = status
        responseFraming = framing
        var bytes = connection.encodeHead(for: self, status: status, headers: headers, framing: framing)
        if !isHead && framing != .noBody {
            bytes.append(contentsOf: body)
            bodyBytesSent = UInt64(body.count)
        }
        connection.write(bytes, completion: nil)
        endResponse()
    }

    /// Sends `{"error": message}` with the status, as the API's errors read.
    public func respondError(_ status: HTTPStatus, _ message: String, headers: HTTPHeaders = HTTPHeaders()) {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        respond(status, headers: headers, body: ErrorBody(error: message).jsonBytes)
    }

    /// Starts a streamed response; with no length it is chunked (or, for HTTP/1.0, ends with the connection).
    public func beginResponse(_ status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), contentLength: UInt64?) {
        guard let connection, !hasResponded else { return }
        let framing = connection.framing(for: self, status: status, contentLength: contentLength)
        responseStatus = status
        responseFraming = framing
        connection.write(connection.encodeHead(for: self, status: status, headers: headers, framing: framing),
                         completion: nil)
    }

    /// Writes part of a streamed body; `completion` runs once the bytes have left for the socket, which is the
    /// moment to produce the next part.
    public func write(_ bytes: [UInt8], completion: (() -> Void)? = nil) {
        guard let connection, hasResponded, !responseEnded, !aborted else { return }
        guard !isHead, responseFraming != .noBody, !bytes.isEmpty else {
            completion.map { connection.defer($0) }
            return
        }
        bodyBytesSent += UInt64(bytes.count)
        if responseFraming == .chunked {
            var framed = Array((String(bytes.count, radix: 16) + "\r\n").utf8)
            framed.append(contentsOf: bytes)
            framed.append(contentsOf: [13, 10])
            connection.write(framed, completion: completion)
        } else {
            connection.write(bytes, completion: completion)
        }
    }

    /// Finishes the response; the connection then reads the next request or closes.
    public func endResponse() {
        guard let connection, hasResponded, !responseEnded else { return }
        responseEnded = true
        if responseFraming == .chunked && !isHead {
            connection.write(Array("0\r\n\r\n".utf8), completion: nil)
        }
        connection.exchangeEnded(self)
    }

    func abort() {
        guard !aborted else { return }
        aborted = true
        let callback = onAbort
        onAbort = nil
        if !responseEnded { callback?() }
        releaseHandlers()
    }

    /// Drops the handler's closures once the exchange is over; they often hold the object that holds this
    /// exchange, and would otherwise keep both alive.
    func releaseHandlers() {
        bodyHandler = nil
        bodyEndHandler = nil
        onAbort = nil
    }
}

/// A request body that passed the handler's limit.
public struct BodyTooLarge: Error, Equatable {
    public var limit: Int
}
