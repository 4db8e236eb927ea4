import ReplicaCore

/// What the `replica-link` command line asks for.
public enum GatewayCommand: Equatable {
    case serve(GatewayConfiguration)
    /// Print the PIN, or make a new one first.
    case pin(dataDirectory: String, regenerate: Bool)
    case help(String)
    case version
}

/// A command line that cannot be obeyed; printed with a hint and exit status 64 (EX_USAGE).
public struct UsageError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ message: String) { description = message }
}

/// Turns arguments and environment into a command; flags override `REPLICA_*` variables, which override defaults.
public enum CommandLineInterface {
    public static let version = "1.0.0"

    public static let helpText = """
        USAGE: replica-link serve [--host ADDR] [--port N] [--data-dir PATH] [--pin NNNNNN]
                                  [--workers N] [--log-level LEVEL] [--tls-cert FILE --tls-key FILE]
                                  [--projects-dir PATH] [--max-file-size SIZE] [--max-files N]
                                  [--max-upload-size SIZE]
               replica-link pin [--data-dir PATH] [--regenerate]
               replica-link --help | --version

        Serves the Replica Link API: clients upload photos and get back textured 3D models.

        SERVE OPTIONS:
          --host ADDR        Address to listen on, numeric IPv4 or IPv6.
                             (env REPLICA_HOST; default 0.0.0.0, every interface)
          --port N           Port to listen on; if it is taken, the next free port above it is used.
                             0 picks any free port. (env REPLICA_PORT; default 8247)
          --data-dir PATH    Where projects, the database, logs and the PIN are kept.
                             (env REPLICA_DATA_DIR; default $XDG_DATA_HOME/replica-link,
                             else ~/.local/share/replica-link)
          --pin NNNNNN       Use this 6-digit PIN instead of the one generated and kept in the
                             data directory. (env REPLICA_PIN)
          --workers N        Reconstruction worker processes. (env REPLICA_WORKERS; default: one per core)
          --log-level LEVEL  trace, debug, info, notice, warning, error or critical.
                             (env REPLICA_LOG_LEVEL; default info)
          --tls-cert FILE    PEM certificate chain; with --tls-key, serve HTTPS instead of HTTP.
                             (env REPLICA_TLS_CERT)
          --tls-key FILE     PEM private key for --tls-cert. (env REPLICA_TLS_KEY)
          --projects-dir PATH
                             The library: one folder per project. Made with a new data directory;
                             if it is missing later, uploads are refused (412) rather than stored
                             elsewhere. (env REPLICA_PROJECTS_DIR; default <data-dir>/projects)
          --max-file-size SIZE
                             Largest photo accepted, in bytes or with K, M, G, T (powers of 1024).
                             (env REPLICA_MAX_FILE_SIZE; default 4G)
          --max-files N      Most photos in one upload. (env REPLICA_MAX_FILES; default 10000)
          --max-upload-size SIZE
                             Largest upload request, as for --max-file-size.
                             (env REPLICA_MAX_UPLOAD_SIZE; default 64G)

        PIN OPTIONS:
          --data-dir PATH    As for serve.
          --regenerate       Make a new PIN; a running server accepts it at once and forgets the old one.

        The PIN and the address are printed when the server starts. Logs go to stderr and to
        <data-dir>/logs/gateway.log. SIGINT or SIGTERM stops the server after in-flight requests finish.

        """

    public static func parse(_ arguments: [String], environment: [String: String]) throws -> GatewayCommand {
        var rest = arguments[...]
        guard let verb = rest.popFirst() else { throw UsageError("missing command: serve or pin") }
        switch verb {
        case "--help", "-h", "help": return .help(helpText)
        case "--version": return .version
        case "serve": return try parseServe(rest, environment: environment)
        case "pin": return try parsePin(rest, environment: environment)
        default: throw UsageError("unknown command '\(verb)': expected serve or pin")
        }
    }

    private static func parseServe(_ arguments: ArraySlice<String>,
                                   environment: [String: String]) throws -> GatewayCommand {
        var settings: [String: String] = [:]
        let names = ["host", "port", "data-dir", "pin", "workers", "log-level", "tls-cert", "tls-key",
                     "projects-dir", "max-file-size", "max-files", "max-upload-size"]
        for name in names {
            let variable = "REPLICA_" + name.uppercased().replacingAll("-", with: "_")
            if let value = environment[variable], !value.isEmpty { settings[name] = value }
        }
        var rest = arguments
        while let flag = rest.popFirst() {
            if flag == "--help" || flag == "-h" { return .help(helpText) }
            let (name, inline) = splitFlag(flag)
            guard names.contains(name) else { throw UsageError("unknown option '\(flag)' for serve") }
            guard let value = inline ?? rest.popFirst() else { throw UsageError("--\(name) needs a value") }
            settings[name] = value
        }
        return .serve(try configuration(from: settings, environment: environment))
    }

    private static func configuration(from settings: [String: String],
                                      environment: [String: String]) throws -> GatewayConfiguration {
        var config = GatewayConfiguration(dataDirectory: settings["data-dir"]
                                          ?? GatewayConfiguration.defaultDataDirectory(environment: environment))
        if let host = settings["host"] { config.host = host }
        if let port = settings["port"] { config.port = try integer(port, "--port") }
        if let workers = settings["workers"] { config.workers = try integer(workers, "--workers") }
        if let level = settings["log-level"] {
            guard let parsed = LogLevel(name: level) else {
                throw UsageError("--log-level must be one of \(LogLevel.allCases.map(\.name).joined(separator: ", "))")
            }
            config.logLevel = parsed
        }
        config.fixedPin = settings["pin"]
        config.tlsCertificatePath = settings["tls-cert"]
        config.tlsKeyPath = settings["tls-key"]
        if let path = settings["projects-dir"] { config.projectsDirectory = path }
        if let size = settings["max-file-size"] { config.uploads.maxFileBytes = try byteCount(size, "--max-file-size") }
        if let count = settings["max-files"] { config.uploads.maxFiles = try integer(count, "--max-files") }
        if let size = settings["max-upload-size"] {
            config.uploads.maxRequestBytes = try byteCount(size, "--max-upload-size")
        }
        do {
            try config.validate()
        } catch let error as OptionsError {
            throw UsageError(error.description)
        }
        return config
    }

    private static func parsePin(_ arguments: ArraySlice<String>,
                                 environment: [String: String]) throws -> GatewayCommand {
        var dataDirectory = environment["REPLICA_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? GatewayConfiguration.defaultDataDirectory(environment: environment)
        var regenerate = false
        var rest = arguments
        while let flag = rest.popFirst() {
            let (name, inline) = splitFlag(flag)
            switch name {
            case "regenerate": regenerate = true
            case "data-dir":
                guard let value = inline ?? rest.popFirst(), !value.isEmpty else {
                    throw UsageError("--data-dir needs a value")
                }
                dataDirectory = value
            case "help", "h": return .help(helpText)
            default: throw UsageError("unknown option '\(flag)' for pin")
            }
        }
        return .pin(dataDirectory: dataDirectory, regenerate: regenerate)
    }

    /// `--name=value` or `--name`, without the dashes.
    private static func splitFlag(_ flag: String) -> (String, String?) {
        let bare = flag.hasPrefix("--") ? String(flag.dropFirst(2)) : flag
        guard let equals = bare.firstIndex(of: "=") else { return (bare, nil) }
        return (String(bare[..<equals]), String(bare[bare.index(after: equals)...]))
    }

    /// `1500`, `64K`, `4G`: a byte count with an optional binary suffix.
    public static func byteCount(_ text: String, _ flag: String) throws -> UInt64 {
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text.uppercased())
        var multiplier: UInt64 = 1
        if digits.hasSuffix("B") { digits = digits.dropLast() }
        if let last = digits.last, let unit = units[last] {
            multiplier = unit
            digits = digits.dropLast()
        }
        guard let value = UInt64(digits), value > 0, value <= UInt64.max / multiplier else {
            throw UsageError("\(flag) must be a size such as 500M or 4G, not '\(text)'")
        }
        return value * multiplier
    }

    private static func integer(_ text: String, _ flag: String) throws -> Int {
        guard let value = Int(text) else { throw UsageError("\(flag) must be a whole number, not '\(text)'") }
        return value
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
