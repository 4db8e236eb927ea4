import Foundation
import ReplicaCore

/// Everything `replica-link serve` can be told, from flags or `REPLICA_*` environment variables.
public struct GatewayConfiguration: Equatable, Sendable {
    /// Address to listen on; numeric IPv4 or IPv6.
    public var host = "0.0.0.0"
    /// Port to listen on; when taken, the next free one above it is used.
    public var port = 8247
    /// How many ports above `port` to try when it is taken.
    public var portFallbackCount = 100
    /// Where the database, projects, logs and the PIN live.
    public var dataDirectory: String
    /// A PIN fixed by the operator; nil means generated and kept in the data directory.
    public var fixedPin: String?
    /// Reconstruction worker processes; the number of cores by default.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// The argv that starts one worker (`CommandTemplate.split`); nil means `CommandTemplate.defaultWorkerCommand`.
    public var workerCommand: [String]?
    /// The least severe level written to the logs.
    public var logLevel: LogLevel = .info
    /// PEM certificate chain and key for HTTPS; both or neither.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// The library of project folders; nil means `<data-dir>/projects`.
    public var projectsDirectory: String?
    /// What one upload may carry.
    public var uploads = UploadLimits()
    /// HTTP limits and timeouts; not on the command line, tests and embedders set them.
    public var http = HTTPLimitsSetting()
    /// The worker pool's timeouts and extra environment; not on the command line, tests set them.
    public var workerTiming = WorkerTimingSetting()

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    /// Where project folders live, as configured or by default.
    public var effectiveProjectsDirectory: String { projectsDirectory ?? dataDirectory + "/projects" }

    /// `$XDG_DATA_HOME/replica-link`, else `~/.local/share/replica-link`.
    public static func defaultDataDirectory(environment: [String: String]) -> String {
        if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") { return xdg + "/replica-link" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.local/share/replica-link"
    }

    /// Rejects nonsense with a message that names the setting.
    public func validate() throws {
        guard GatewayConfiguration.isNumericAddress(host) else {
            throw OptionsError("--host must be a numeric IPv4 or IPv6 address such as 0.0.0.0 or ::1, not '\(host)'")
        }
        guard (0...65535).contains(port) else { throw OptionsError("--port must be 0–65535, not \(port)") }
        guard workers >= 1 && workers <= 1024 else { throw OptionsError("--workers must be 1–1024, not \(workers)") }
        if let workerCommand, workerCommand.first?.isEmpty ?? true {
            throw OptionsError("--worker-command must name the program that starts a worker")
        }
        if let pin = fixedPin, !PinStore.isValidPin(pin) {
            throw OptionsError("--pin must be exactly 6 digits")
        }
        if (tlsCertificatePath == nil) != (tlsKeyPath == nil) {
            throw OptionsError("--tls-cert and --tls-key must be given together")
        }
        guard !dataDirectory.isEmpty else { throw OptionsError("--data-dir must not be empty") }
        if let projectsDirectory, projectsDirectory.isEmpty { throw OptionsError("--projects-dir must not be empty") }
        try uploads.validate()
    }
}

extension GatewayConfiguration {
    static func isNumericAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// The HTTP server's limits as a configuration value (kept apart so the configuration stays Equatable).
public struct HTTPLimitsSetting: Equatable, Sendable {
    public var headDeadline: Double?
    public var keepAliveIdleTimeout: Double?
    public var bodyInactivityTimeout: Double?
    public var maxConnections: Int?
    public var maxConnectionsPerAddress: Int?
    public var sweepInterval: Double?
    public var shutdownGracePeriod: Double?

    public init() {}
}
