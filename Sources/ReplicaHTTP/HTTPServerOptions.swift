import ReplicaCore

/// Limits and timeouts of the HTTP server; the defaults follow nginx, h2o and HAProxy where they agree.
public struct HTTPServerOptions: Sendable {
    /// Request-line and header limits (414 and 431 answers).
    public var parserLimits = HTTPParserLimits()
    /// Seconds from a request head's first byte until it must be complete (slowloris defence); 408 after.
    public var headDeadline: Double = 20
    /// Seconds a body may go without a byte before the request is cut off.
    public var bodyInactivityTimeout: Double = 30
    /// Bytes per second a body must average once `bodyRateGracePeriod` has passed.
    public var minimumBodyRate: Double = 1024
    /// Seconds of a body before `minimumBodyRate` is enforced.
    public var bodyRateGracePeriod: Double = 10
    /// Seconds a connection may sit with no request in progress (before its first request, and between).
    public var keepAliveIdleTimeout: Double = 30
    /// Seconds a response may wait for the client to read before the connection is dropped.
    public var sendTimeout: Double = 60
    /// Requests served on one connection before it is closed.
    public var maxRequestsPerConnection: Int = 1000
    /// Seconds after which a connection is closed at its next request boundary.
    public var maxConnectionLifetime: Double = 3600
    /// Open connections in all; at the cap the longest-idle one is closed to admit a new one.
    public var maxConnections: Int = 10_000
    /// Open connections from one client address; at the cap its longest-idle one is closed first.
    public var maxConnectionsPerAddress: Int = 512
    /// Seconds to keep reading (and discarding) after an early error answer, so the client sees it.
    public var lingerTimeout: Double = 2
    /// Seconds in-flight responses get to finish at shutdown.
    public var shutdownGracePeriod: Double = 10
    /// Seconds between sweeps that enforce the deadlines above.
    public var sweepInterval: Double = 0.25
    /// Value of the `Server` response header.
    public var serverName: String = "replica-link"

    public init() {}

    /// Rejects settings that would make the server unusable.
    public func validate() throws {
        let positive: [(String, Double)] = [
            ("headDeadline", headDeadline), ("bodyInactivityTimeout", bodyInactivityTimeout),
            ("keepAliveIdleTimeout", keepAliveIdleTimeout), ("sendTimeout", sendTimeout),
            ("maxConnectionLifetime", maxConnectionLifetime), ("lingerTimeout", lingerTimeout),
            ("sweepInterval", sweepInterval),
        ]
        for (name, value) in positive where !(value > 0) {
            throw OptionsError("\(name) must be a positive number of seconds, not \(value)")
        }
        if minimumBodyRate < 0 { throw OptionsError("minimumBodyRate must not be negative") }
        if maxRequestsPerConnection < 1 { throw OptionsError("maxRequestsPerConnection must be at least 1") }
        if maxConnections < 1 || maxConnectionsPerAddress < 1 {
            throw OptionsError("connection caps must be at least 1")
        }
    }
}
