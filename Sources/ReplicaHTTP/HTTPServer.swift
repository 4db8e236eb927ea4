import CLibUV
import Glibc
import ReplicaCore

/// What the server hands each request to.
public protocol HTTPServerDelegate: AnyObject {
    /// Called on the loop thread once a request's head is complete; answer through the exchange.
    func serve(_ exchange: HTTPExchange)
}

/// An HTTP/1.1 server on a libuv loop: accepts connections, enforces the limits of `HTTPServerOptions`,
/// and hands requests to its delegate. All of it runs on the loop's thread.
public final class HTTPServer {
    public let loop: UnsafeMutablePointer<uv_loop_t>
    public let options: HTTPServerOptions
    public weak var delegate: HTTPServerDelegate?
    public let logger: Logger
    private let tlsContext: TLSContext?

    private var listener: UnsafeMutablePointer<uv_tcp_t>?
    private var sweepTimer: UnsafeMutablePointer<uv_timer_t>?
    private var deferredWork: [() -> Void] = []
    private var idleHandle: UnsafeMutablePointer<uv_idle_t>?
    private var connections: [ObjectIdentifier: HTTPConnection] = [:]
    private var connectionsPerAddress: [String: Int] = [:]
    private var requestCounter: UInt64 = 0
    private let requestIDPrefix: String
    private var shutdownCompletion: (() -> Void)?
    private var shutdownStartedAt: UInt64 = 0
    private var lastDateSecond: time_t = 0
    private let readBufferStorage: UnsafeMutableRawPointer
    private static let readBufferSize = 64 * 1024

    /// The loop-wide read buffer: libuv fills it and the read callback consumes it before the next read.
    let sharedReadBuffer: uv_buf_t
    /// Bytes queued on a socket beyond which no further request is parsed from it until they drain.
    let writeHighWater = 1 << 20
    private(set) var dateHeader = ""
    public private(set) var isDraining = false
    /// The port actually bound, once `listen` succeeded.
    public private(set) var boundPort = 0

    public init(loop: UnsafeMutablePointer<uv_loop_t>, options: HTTPServerOptions = HTTPServerOptions(),
                tls: TLSContext? = nil, logger: Logger = .silent) throws {
        try options.validate()
        // libuv writes to sockets with write(2): a peer that has gone away would raise SIGPIPE and kill the
        // process. Ignored process-wide, the write fails with EPIPE and that one connection closes.
        signal(SIGPIPE, SIG_IGN)
        self.loop = loop
        self.options = options
        self.tlsContext = tls
        self.logger = logger
        readBufferStorage = UnsafeMutableRawPointer.allocate(byteCount: HTTPServer.readBufferSize, alignment: 16)
        sharedReadBuffer = uv_buf_init(readBufferStorage.assumingMemoryBound(to: CChar.self),
                                       UInt32(HTTPServer.readBufferSize))
        var prefix: UInt32
        prefix = UInt32.random(in: 0...UInt32.max)
        requestIDPrefix = String(prefix, radix: 16)
        refreshDate()
    }

    deinit { readBufferStorage.deallocate() }

    /// The loop's monotonic clock in milliseconds.
    var now: UInt64 { uv_now(loop) }

    // MARK: Listening

    /// Binds `host:port`, moving up to `fallbackPorts` ports higher while the port is taken; returns the port bound.
    /// Port 0 binds an ephemeral port.
    @discardableResult
    public func listen(host: String, port: Int, fallbackPorts: Int = 0, backlog: Int32 = 1024) throws -> Int {
        var candidate = port
        while true {
            do {
                try bind(host: host, port: candidate, backlog: backlog)
                break
            } catch let error as UVError where error.code == UVError.addressInUse
                        && candidate < port + fallbackPorts && port != 0 {
                logger.info("port in use, trying the next", ["http.port": "\(candidate)"])
                candidate += 1
            }
        }
        startSweep()
        return boundPort
    }

    private func bind(host: String, port: Int, backlog: Int32) throws {
        var address = try makeSocketAddress(host: host, port: port)
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop, tcp)
        tcp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        do {
            let status = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
            }
            try uvCheck(status, "bind \(host):\(port)")
            try uvCheck(uv_listen(asStream(tcp), backlog) { server, status in
                let owner = Unmanaged<HTTPServer>.fromOpaque(server!.pointee.data).takeUnretainedValue()
                owner.accept(status: status)
            }, "listen \(host):\(port)")
        } catch {
            closeAndFree(tcp)
            throw error
        }
        var bound = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = uv_tcp_getsockname(tcp, $0, &length) }
        }
        boundPort = withUnsafePointer(to: &bound) { describeAddress($0).port }
        listener = tcp
    }

    private func accept(status: Int32) {
        guard status == 0, let listener, !isDraining else { return }
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop, tcp)
        guard uv_accept(asStream(listener), asStream(tcp)) == 0 else { return closeAndFree(tcp) }
        uv_tcp_nodelay(tcp, 1)
        var peer = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = uv_tcp_getpeername(tcp, $0, &length) }
        }
        let address = withUnsafePointer(to: &peer) { describeAddress($0).host }
        guard makeRoom(for: address) else {
            logger.warning("connection refused: no idle connection to close", ["client.address": address])
            return closeAndFree(tcp)
        }
        admit(tcp, address: address)
    }

    private func admit(_ tcp: UnsafeMutablePointer<uv_tcp_t>, address: String) {
        var session: TLSSession?
        if let tlsContext {
            do {
                session = try TLSSession(context: tlsContext)
            } catch {
                logger.error("TLS session could not be created", ["error": "\(error)"])
                return closeAndFree(tcp)
            }
        }
        let connection = HTTPConnection(server: self, tcp: tcp, remoteAddress: address, tls: session)
        connections[ObjectIdentifier(connection)] = connection
        connectionsPerAddress[address, default: 0] += 1
        connection.startReading()
    }

    /// At a cap, closes the longest-idle connection (of this address, for the per-address cap) so idle sockets
    /// cannot lock out an active client; false when every connection is busy.
    private func makeRoom(for address: String) -> Bool {
        if connectionsPerAddress[address, default: 0] >= options.maxConnectionsPerAddress {
            guard let victim = evictionCandidate(where: { $0.remoteAddress == address }) else { return false }
            victim.close()
        }
        if connections.count >= options.maxConnections {
            guard let victim = evictionCandidate(where: { _ in true }) else { return false }
            victim.close()
        }
        return true
    }

    private func evictionCandidate(where matches: (HTTPConnection) -> Bool) -> HTTPConnection? {
        let candidates = connections.values.filter(matches)
        if let idle = candidates.filter(\.isIdle).min(by: { $0.lastActivity < $1.lastActivity }) { return idle }
        // No idle one: a head still arriving after the longest time is the next best thing to drop.
        return candidates.filter(\.isReadingHead).min(by: { $0.headStartedAt < $1.headStartedAt })
    }

    func connectionClosed(_ connection: HTTPConnection) {
        guard connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        let remaining = connectionsPerAddress[connection.remoteAddress, default: 1] - 1
        connectionsPerAddress[connection.remoteAddress] = remaining > 0 ? remaining : nil
        if isDraining && connections.isEmpty { finishShutdown() }
    }

    /// Open connections, for tests and the status log.
    public var connectionCount: Int { connections.count }

    // MARK: Sweep

    private func startSweep() {
        guard sweepTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let interval = UInt64(max(1, options.sweepInterval * 1000))
        uv_timer_start(timer, { timer in
            Unmanaged<HTTPServer>.fromOpaque(timer!.pointee.data).takeUnretainedValue().sweep()
        }, interval, interval)
        sweepTimer = timer
    }

    private func sweep() {
        refreshDate()
        let now = self.now
        for connection in Array(connections.values) { connection.checkDeadlines(now: now) }
        if isDraining && Double(now - shutdownStartedAt) / 1000 >= options.shutdownGracePeriod {
            logger.warning("shutdown grace period over, closing connections",
                           ["http.connections": "\(connections.count)"])
            for connection in Array(connections.values) { connection.close() }
            finishShutdown()
        }
    }

    private func refreshDate() {
        let second = time(nil)
        guard second != lastDateSecond else { return }
        lastDateSecond = second
        dateHeader = httpDate(second)
    }

    // MARK: Helpers for connections

    func nextRequestID() -> String {
        requestCounter += 1
        return requestIDPrefix + "-" + String(requestCounter)
    }

    func writeQueueSize(_ connection: HTTPConnection) -> Int {
        Int(uv_stream_get_write_queue_size(asStream(connection.tcp)))
    }

    /// Runs `work` on the next loop iteration.
    func `defer`(_ work: @escaping () -> Void) {
        deferredWork.append(work)
        if idleHandle == nil {
            let handle = UnsafeMutablePointer<uv_idle_t>.allocate(capacity: 1)
            uv_idle_init(loop, handle)
            handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            idleHandle = handle
        }
        uv_idle_start(idleHandle, { handle in
            Unmanaged<HTTPServer>.fromOpaque(handle!.pointee.data).takeUnretainedValue().runDeferred()
        })
    }

    private func runDeferred() {
        let work = deferredWork
        deferredWork = []
        if let idleHandle { uv_idle_stop(idleHandle) }
        for item in work { item() }
    }

    /// One access-log line per request; the target's `token=` is redacted, headers are never logged.
    func logAccess(_ exchange: HTTPExchange, now: UInt64) {
        guard logger.isEnabled(.info) else { return }
        let millis = Double(now &- exchange.startedAt)
        logger.info("request", [
            "request.id": exchange.requestID,
            "http.method": exchange.head.method.rawValue,
            "http.path": redactSecrets(inTarget: exchange.head.target),
            "http.status": String(exchange.responseStatus?.code ?? 0),
            "http.bytes": String(exchange.bodyBytesSent),
            "http.duration_ms": String(Int(millis)),
            "client.address": exchange.remoteAddress,
        ])
    }

    // MARK: Shutdown

    /// Stops accepting, closes idle connections, lets in-flight responses finish within the grace period,
    /// then releases the server's handles and calls `completion`.
    public func shutdown(completion: @escaping () -> Void) {
        guard !isDraining else { return }
        isDraining = true
        shutdownCompletion = completion
        shutdownStartedAt = now
        if let listener {
            closeAndFree(listener)
            self.listener = nil
        }
        for connection in Array(connections.values) where connection.isIdle { connection.close() }
        if connections.isEmpty { finishShutdown() }
    }

    private func finishShutdown() {
        guard let completion = shutdownCompletion else { return }
        shutdownCompletion = nil
        if let sweepTimer {
            uv_timer_stop(sweepTimer)
            closeAndFree(sweepTimer)
            self.sweepTimer = nil
        }
        if let idleHandle {
            closeAndFree(idleHandle)
            self.idleHandle = nil
        }
        runDeferred()
        completion()
    }
}
