import CLibUV
import Glibc
import ReplicaCore

/// One client connection: reads bytes, parses requests one after another, and writes responses in order.
///
/// Requests are handled one at a time. While a response is unfinished the next pipelined request stays unparsed
/// in `pendingInput`, and the socket is not read, so a client cannot make the server buffer without bound.
final class HTTPConnection {
    // Strong: libuv callbacks for a closed connection (cancelled writes, the close itself) can run after the
    // gateway has let go of the server at shutdown; the server is freed once its last connection is.
    let server: HTTPServer
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    let remoteAddress: String
    private let tls: TLSSession?
    private var parser: HTTPRequestParser

    private(set) var exchange: HTTPExchange?
    private var pendingInput: [UInt8] = []
    private var isParsing = false
    private var reading = false
    private(set) var state = State.open
    private var closeAfterResponse = false
    private var requestCount = 0
    private var pendingWrites = 0

    // Times in milliseconds of the loop's clock.
    let createdAt: UInt64
    private(set) var lastActivity: UInt64
    private(set) var headStartedAt: UInt64 = 0
    private var headInProgress = false
    private var bodyFlowingSince: UInt64 = 0
    private var bodyBytesSinceFlowing: UInt64 = 0
    private var lastBodyAt: UInt64 = 0
    private var lastWriteProgress: UInt64 = 0
    private var lingerStartedAt: UInt64 = 0

    enum State {
        case open
        /// The last response is queued; close (gracefully, or by lingering) once it has been written.
        case closingAfterWrites(linger: Bool)
        /// Our side is shut; reading and discarding until the client closes or the linger time runs out.
        case lingering
        case closed
    }

    init(server: HTTPServer, tcp: UnsafeMutablePointer<uv_tcp_t>, remoteAddress: String, tls: TLSSession?) {
        self.server = server
        self.tcp = tcp
        self.remoteAddress = remoteAddress
        self.tls = tls
        self.parser = HTTPRequestParser(limits: server.options.parserLimits)
        createdAt = server.now
        lastActivity = createdAt
        // The handle holds a reference until its close callback runs.
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Idle: no request in progress and nothing of one received; such a connection may be evicted.
    var isIdle: Bool {
        if case .lingering = state { return true }
        return exchange == nil && !headInProgress && pendingInput.isEmpty
    }

    var isReadingHead: Bool { exchange == nil && headInProgress }

    // MARK: Reading

    func startReading() {
        guard !reading, case .open = state else { return }
        reading = true
        uv_read_start(asStream(tcp), HTTPConnection.allocate, HTTPConnection.didRead)
    }

    private func stopReading() {
        guard reading else { return }
        reading = false
        uv_read_stop(asStream(tcp))
    }

    private static let allocate: uv_alloc_cb = { handle, _, buffer in
        let connection = Unmanaged<HTTPConnection>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
        buffer!.pointee = connection.server.sharedReadBuffer
    }

    private static let didRead: uv_read_cb = { stream, count, buffer in
        let connection = Unmanaged<HTTPConnection>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
        if count < 0 { return connection.readEnded(Int32(count)) }
        guard count > 0 else { return }
        connection.received(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: count))
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = server.now
        switch state {
        case .lingering, .closingAfterWrites, .closed:
            return  // Discarded: the exchange is over and the connection is going away.
        case .open:
            break
        }
        // The head deadline runs from the first byte received, ciphertext included: a TLS handshake trickled a
        // byte at a time must be cut off like a trickled request head.
        if exchange == nil && !headInProgress {
            headInProgress = true
            headStartedAt = server.now
        }
        if let tls {
            do {
                try tls.receive(bytes) { plaintext in self.receivedPlaintext(plaintext) }
                flushTLS()
            } catch {
                server.logger.debug("TLS failure", ["client.address": remoteAddress, "error": "\(error)"])
                flushTLS()
                close()
            }
        } else {
            receivedPlaintext(bytes)
        }
    }

    private func receivedPlaintext(_ bytes: UnsafeRawBufferPointer) {
        guard case .open = state else { return }
        if pendingInput.isEmpty && canParse {
            let consumed = parse(bytes)
            if consumed < bytes.count {
                pendingInput.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[consumed...]))
            }
        } else {
            pendingInput.append(contentsOf: bytes)
            processPendingInput()
        }
        updateReading()
    }

    private func readEnded(_ status: Int32) {
        if case .lingering = state { return close() }
        // A client that half-closes after its request still gets the answer; anything else ends here.
        if let exchange, exchange.messageComplete, !exchange.responseEnded, status == UV_EOF.rawValue {
            stopReading()
            closeAfterResponse = true
            return
        }
        close()
    }

    /// Whether the parser may run now: no exchange (a new request may start), or a body the handler takes.
    private var canParse: Bool {
        guard case .open = state else { return false }
        if server.writeQueueSize(self) > server.writeHighWater { return false }
        guard let exchange else { return true }
        return !exchange.messageComplete && exchange.bodyHandler != nil && !exchange.bodyPaused
    }

    private func updateReading() {
        if canParse && pendingInput.isEmpty { startReading() } else { stopReading() }
    }

    private func processPendingInput() {
        guard !isParsing, !pendingInput.isEmpty, canParse else { return }
        if exchange == nil && !headInProgress {
            headInProgress = true
            headStartedAt = server.now
        }
        let input = pendingInput
        pendingInput = []
        let consumed = input.withUnsafeBytes { parse($0) }
        if consumed < input.count {
            pendingInput.insert(contentsOf: input[consumed...], at: 0)
        }
    }

    /// Parses as far as the current state allows and returns the bytes consumed.
    private func parse(_ bytes: UnsafeRawBufferPointer) -> Int {
        isParsing = true
        defer { isParsing = false }
        var offset = 0
        while offset < bytes.count && canParse {
            do {
                offset += try parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...])) { event in
                    self.handle(event)
                }
            } catch {
                failRequest(error.status, error.reason)
                return bytes.count
            }
            dispatchIfNeeded()
        }
        return offset
    }

    private func handle(_ event: HTTPParserEvent) {
        switch event {
        case .head(let head):
            begin(head)
        case .body(let chunk):
            guard let exchange else { return }
            let now = server.now
            lastBodyAt = now
            bodyBytesSinceFlowing += UInt64(chunk.count)
            exchange.bodyBytesReceived += UInt64(chunk.count)
            if let handler = exchange.bodyHandler, !exchange.bodyPaused, exchange.heldBody.isEmpty {
                handler(chunk)
            } else {
                exchange.heldBody.append(contentsOf: chunk)
            }
        case .end:
            guard let exchange else { return }
            exchange.messageComplete = true
            deliverEndIfReady(exchange)
        }
    }

    private func begin(_ head: HTTPRequestHead) {
        headInProgress = false
        requestCount += 1
        let now = server.now
        lastBodyAt = now
        bodyFlowingSince = now
        bodyBytesSinceFlowing = 0
        let id = server.nextRequestID()
        exchange = HTTPExchange(head: head, connection: self, requestID: id, logger: server.logger, now: now)
    }

    private func dispatchIfNeeded() {
        guard let exchange, !exchange.dispatched else { return }
        exchange.dispatched = true
        if let expect = exchange.head.headers["Expect"], !exchange.head.expectsContinue {
            exchange.respondError(HTTPStatus(417), "Unsupported expectation: \(expect)")
            return
        }
        server.delegate?.serve(exchange)
    }

    // MARK: Body delivery

    /// The handler asked for the body (or resumed it): hand over what is held, then read on.
    func bodyWanted(_ exchange: HTTPExchange) {
        guard exchange === self.exchange, case .open = state else { return }
        sendContinueIfNeeded(exchange)
        bodyFlowingSince = server.now
        bodyBytesSinceFlowing = 0
        lastBodyAt = bodyFlowingSince
        if !exchange.heldBody.isEmpty, let handler = exchange.bodyHandler, !exchange.bodyPaused {
            let held = exchange.heldBody
            exchange.heldBody = []
            held.withUnsafeBytes { handler($0) }
        }
        deliverEndIfReady(exchange)
        guard exchange === self.exchange, !isParsing else { return }
        processPendingInput()
        updateReading()
    }

    private func sendContinueIfNeeded(_ exchange: HTTPExchange) {
        guard exchange.head.expectsContinue, !exchange.continueSent, !exchange.messageComplete,
              !exchange.hasResponded else { return }
        exchange.continueSent = true
        write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), completion: nil)
    }

    private func deliverEndIfReady(_ exchange: HTTPExchange) {
        guard exchange.messageComplete, !exchange.endDelivered, exchange.heldBody.isEmpty,
              !exchange.bodyPaused, let end = exchange.bodyEndHandler else { return }
        exchange.endDelivered = true
        end()
    }

    // MARK: Responses

    func framing(for exchange: HTTPExchange, status: HTTPStatus, contentLength: UInt64?) -> ResponseFraming {
        if status.code < 200 || status.code == 204 || status.code == 304 { return .noBody }
        if let contentLength { return .length(contentLength) }
        return exchange.head.version == .http1_1 ? .chunked : .untilClose
    }

    /// The head of a response; decides here whether the connection stays open after it. A body not yet
    /// received in full when the answer starts may never be read, and would then be taken for the next
    /// request, so such a connection closes.
    func encodeHead(for exchange: HTTPExchange, status: HTTPStatus, headers: HTTPHeaders,
                    framing: ResponseFraming) -> [UInt8] {
        let now = server.now
        let close = closeAfterResponse || !exchange.head.keepAlive || framing == .untilClose
            || server.isDraining || requestCount >= server.options.maxRequestsPerConnection
            || Double(now - createdAt) / 1000 >= server.options.maxConnectionLifetime
            || !exchange.messageComplete
        closeAfterResponse = close
        var headers = headers
        headers.replaceOrAdd(name: "X-Request-Id", value: exchange.requestID)
        let head = ResponseHead(status: status, headers: headers, version: exchange.head.version,
                                date: server.dateHeader, serverName: server.options.serverName,
                                framing: framing, closeConnection: close)
        return head.encode()
    }

    /// The handler finished its response: log it, then read the next request or close.
    func exchangeEnded(_ exchange: HTTPExchange) {
        guard exchange === self.exchange else { return }
        // Keep-alive idleness counts from the end of the answer, not from the request: a long download must
        // not leave the connection already "idle" for the next request.
        lastActivity = server.now
        server.logAccess(exchange, now: lastActivity)
        exchange.releaseHandlers()
        let bodyUnread = !exchange.messageComplete
        if closeAfterResponse || bodyUnread {
            // An unread body would be taken for the next request: the connection cannot be reused.
            self.exchange = nil
            exchange.connection = nil
            beginClosing(linger: bodyUnread)
            return
        }
        self.exchange = nil
        exchange.connection = nil
        if !isParsing {
            processPendingInput()
            updateReading()
        }
    }

    /// Answers a request the server itself rejects (parse errors, timeouts) and closes after a linger.
    func failRequest(_ status: HTTPStatus, _ reason: String) {
        guard case .open = state else { return }
        if let exchange, exchange.hasResponded {
            return close()
        }
        let failed = exchange ?? HTTPExchange(
            head: HTTPRequestHead(method: HTTPMethod(rawValue: "-"), target: "-", version: .http1_1,
                                  headers: HTTPHeaders(), keepAlive: false),
            connection: self, requestID: server.nextRequestID(), logger: server.logger, now: server.now)
        exchange = failed
        failed.messageComplete = false
        failed.dispatched = true
        closeAfterResponse = true
        server.logger.debug("request rejected", ["client.address": remoteAddress, "http.status": "\(status.code)",
                                                 "reason": reason])
        failed.abort()
        // The parser's reasons are phrases; the API's error messages read as sentences.
        failed.respondError(status, reason.prefix(1).uppercased() + reason.dropFirst())
    }

    // MARK: Writing

    func write(_ bytes: [UInt8], completion: (() -> Void)?) {
        guard !isClosed else { return }
        if let tls {
            do {
                try bytes.withUnsafeBytes { try tls.send($0) }
            } catch {
                return close()
            }
            guard let ciphertext = tls.takeCiphertext() else {
                completion.map { self.defer($0) }
                return
            }
            writeToSocket(ciphertext, completion: completion)
        } else {
            writeToSocket(bytes, completion: completion)
        }
    }

    private func flushTLS() {
        guard let tls, let ciphertext = tls.takeCiphertext() else { return }
        writeToSocket(ciphertext, completion: nil)
    }

    private func writeToSocket(_ bytes: [UInt8], completion: (() -> Void)?) {
        var written = 0
        // Most responses fit the socket buffer: try to write at once and skip a copy and a callback.
        if pendingWrites == 0 {
            written = bytes.withUnsafeBytes { raw -> Int in
                var buffer = uv_buf_init(UnsafeMutablePointer(mutating: raw.baseAddress!
                    .assumingMemoryBound(to: CChar.self)), UInt32(raw.count))
                return Int(uv_try_write(asStream(tcp), &buffer, 1))
            }
            if written < 0 && written != Int(UV_EAGAIN.rawValue) { return close() }
            written = max(written, 0)
            lastWriteProgress = server.now
        }
        if written == bytes.count {
            completion.map { self.defer($0) }
            return
        }
        let request = PendingWrite(connection: self, bytes: bytes[written...], completion: completion)
        pendingWrites += 1
        if !request.submit() { pendingWrites -= 1; close() }
    }

    func writeCompleted(status: Int32) {
        pendingWrites -= 1
        lastWriteProgress = server.now
        guard status == 0 else { return close() }
        if pendingWrites == 0 {
            if case .closingAfterWrites(let linger) = state { return finishClosing(linger: linger) }
        }
        if !isParsing && server.writeQueueSize(self) <= server.writeHighWater {
            processPendingInput()
            updateReading()
        }
    }

    /// Runs a completion after the current call stack unwinds, as a real write completion would.
    func `defer`(_ work: @escaping () -> Void) {
        server.defer(work)
    }

    // MARK: Closing

    private func beginClosing(linger: Bool) {
        stopReading()
        guard case .open = state else { return }
        tls?.close()
        flushTLS()
        state = .closingAfterWrites(linger: linger)
        if pendingWrites == 0 { finishClosing(linger: linger) }
    }

    private func finishClosing(linger: Bool) {
        guard !isClosed else { return }
        guard linger else { return close() }
        state = .lingering
        lingerStartedAt = server.now
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        if uv_shutdown(request, asStream(tcp), { request, _ in request?.deallocate() }) < 0 {
            request.deallocate()
            return close()
        }
        reading = true
        uv_read_start(asStream(tcp), HTTPConnection.allocate, HTTPConnection.didRead)
    }

    var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Closes at once; an unfinished exchange is told through `onAbort`.
    func close() {
        guard !isClosed else { return }
        state = .closed
        reading = false
        if let exchange {
            exchange.abort()
            exchange.connection = nil
        }
        exchange = nil
        pendingInput = []
        server.connectionClosed(self)
        uv_close(asHandle(tcp)) { handle in
            let connection = Unmanaged<HTTPConnection>.fromOpaque(handle!.pointee.data).takeRetainedValue()
            connection.tcp.deallocate()
        }
    }

    // MARK: Deadlines

    /// Enforces the timeouts; called by the server's sweep.
    func checkDeadlines(now: UInt64) {
        let options = server.options
        let seconds = { (since: UInt64) in Double(now &- since) / 1000 }
        switch state {
        case .closed:
            return
        case .lingering:
            if seconds(lingerStartedAt) >= options.lingerTimeout { close() }
            return
        case .closingAfterWrites, .open:
            break
        }
        if pendingWrites > 0 && seconds(lastWriteProgress) >= options.sendTimeout { return close() }
        if case .closingAfterWrites = state { return }
        if let exchange {
            return checkBody(exchange, seconds: seconds, options: options)
        }
        if headInProgress {
            if seconds(headStartedAt) >= options.headDeadline {
                failRequest(.requestTimeout, "Request head not received in time")
            }
        } else if seconds(lastActivity) >= options.keepAliveIdleTimeout
                    || seconds(createdAt) >= options.maxConnectionLifetime {
            close()
        }
    }

    private func checkBody(_ exchange: HTTPExchange, seconds: (UInt64) -> Double, options: HTTPServerOptions) {
        guard !exchange.messageComplete, exchange.bodyHandler != nil, !exchange.bodyPaused else { return }
        let flowing = seconds(bodyFlowingSince)
        let tooSlow = flowing >= options.bodyRateGracePeriod
            && Double(bodyBytesSinceFlowing) / flowing < options.minimumBodyRate
        if seconds(lastBodyAt) >= options.bodyInactivityTimeout || tooSlow {
            failRequest(.requestTimeout, "Request body arrived too slowly")
        }
    }
}

/// One queued write: owns a copy of the bytes until libuv reports them sent.
private final class PendingWrite {
    let connection: HTTPConnection
    let completion: (() -> Void)?
    let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    let storage: UnsafeMutableRawBufferPointer

    init(connection: HTTPConnection, bytes: ArraySlice<UInt8>, completion: (() -> Void)?) {
        self.connection = connection
        self.completion = completion
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        storage.copyBytes(from: bytes)
    }

    deinit {
        storage.deallocate()
        request.deallocate()
    }

    func submit() -> Bool {
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        var buffer = uv_buf_init(storage.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(storage.count))
        let status = uv_write(request, asStream(connection.tcp), &buffer, 1) { request, status in
            let write = Unmanaged<PendingWrite>.fromOpaque(request!.pointee.data).takeRetainedValue()
            write.connection.writeCompleted(status: status)
            if status == 0 { write.completion?() }
        }
        if status < 0 {
            Unmanaged<PendingWrite>.fromOpaque(request.pointee.data).release()
            return false
        }
        return true
    }
}
