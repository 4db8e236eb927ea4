import Foundation
import ReplicaCore

/// What the `replica-link` command line asks for.
public enum GatewayCommand: Equatable {
    case serve(GatewayConfiguration)
    /// One reconstruction on this machine, shown by the progress display.
    case reconstruct(ReconstructOptions)
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

/// `replica-link reconstruct`: one reconstruction on this machine, no HTTP.
public struct ReconstructOptions: Equatable, Sendable {
    /// The detail levels the command line accepts (`custom` is not one: it has no flags here).
    public static let detailLevels = ["preview", "reduced", "medium", "full", "raw"]

    /// The folder of photos: the files in it that are photos by content (not hidden).
    public var imagesDirectory: String
    /// One of `detailLevels`.
    public var detail: String
    /// Where intermediate results go; nil = a new folder under $TMPDIR (default /tmp) that the runner prints.
    public var workDirectory: String?
    /// Where the model is written; nil = none.
    public var outputPath: String?
    /// The last stage to run; nil = every stage.
    public var stopAfter: PipelineStage?
    /// How the pairs of photos to match are chosen; `.automatic` as the server does.
    public var pairing: PairSelectionStrategy = .automatic
    /// Keep only the object the cameras surround, as `isObjectMaskingEnabled` asks; off by default, as there.
    public var objectMasking = false
    /// Worker processes; the number of cores by default.
    public var workers: Int
    /// The argv that starts one worker; nil = `CommandTemplate.defaultWorkerCommand`, as for serve.
    public var workerCommand: [String]?
    /// The least severe level logged; warning by default, since the progress display is the output.
    public var logLevel: LogLevel
    /// Forces the display style; nil = a bar when stderr is a terminal, lines otherwise.
    public var progressStyle: ProgressStyle?

    /// The options with every default but the required images folder.
    public init(imagesDirectory: String, detail: String = "medium", workDirectory: String? = nil,
                outputPath: String? = nil, stopAfter: PipelineStage? = nil,
                workers: Int = ProcessInfo.processInfo.activeProcessorCount, workerCommand: [String]? = nil,
                logLevel: LogLevel = .warning, progressStyle: ProgressStyle? = nil) {
        self.imagesDirectory = imagesDirectory
        self.detail = detail
        self.workDirectory = workDirectory
        self.outputPath = outputPath
        self.stopAfter = stopAfter
        self.workers = workers
        self.workerCommand = workerCommand
        self.logLevel = logLevel
        self.progressStyle = progressStyle
    }

    /// Rejects nonsense with a message that names the flag.
    public func validate() throws {
        guard !imagesDirectory.isEmpty else { throw OptionsError("--images must not be empty") }
        guard Self.detailLevels.contains(detail) else {
            throw OptionsError("--detail must be one of \(Self.detailLevels.joined(separator: ", ")), not '\(detail)'")
        }
        if workDirectory?.isEmpty == true { throw OptionsError("--work-dir must not be empty") }
        if outputPath?.isEmpty == true { throw OptionsError("--output must not be empty") }
        guard workers >= 1 && workers <= 1024 else { throw OptionsError("--workers must be 1–1024, not \(workers)") }
        if let workerCommand, workerCommand.first?.isEmpty ?? true {
            throw OptionsError("--worker-command must name the program that starts a worker")
        }
    }
}

/// The exit statuses of `replica-link reconstruct`, as its help lists them (the sysexits.h values where one fits).
public enum ReconstructExit {
    /// The reconstruction is done.
    public static let success: Int32 = 0
    /// The reconstruction failed; the reason is printed.
    public static let failed: Int32 = 1
    /// The command line cannot be obeyed (EX_USAGE).
    public static let usage: Int32 = 64
    /// The images folder is missing or holds no photo (EX_NOINPUT).
    public static let noInput: Int32 = 66
    /// No worker could start (EX_UNAVAILABLE).
    public static let unavailable: Int32 = 69
    /// Stopped by SIGINT or SIGTERM (128 + SIGINT); the work folder keeps what is done.
    public static let interrupted: Int32 = 130
}

/// Turns arguments and environment into a command; flags override `REPLICA_*` variables, which override defaults.
public enum CommandLineInterface {
    public static let version = "1.0.0"

    public static let helpText = """
        USAGE: replica-link serve [--host ADDR] [--port N] [--data-dir PATH] [--pin NNNNNN]
                                  [--workers N] [--worker-command CMD] [--log-level LEVEL]
                                  [--tls-cert FILE --tls-key FILE] [--projects-dir PATH]
                                  [--max-file-size SIZE] [--max-files N] [--max-upload-size SIZE]
               replica-link reconstruct --images DIR [--detail LEVEL] [--work-dir DIR] [--output FILE]
                                        [--stop-after STAGE] [--pairs STRATEGY] [--object-masking on|off]
                                        [--workers N] [--worker-command CMD] [--log-level LEVEL]
                                        [--progress bar|lines]
               replica-link pin [--data-dir PATH] [--regenerate]
               replica-link --help | --version

        Serves the Replica Link API: clients upload photos and get back textured 3D models.
        reconstruct makes one model from a folder of photos on this machine, without the API.

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
          --worker-command CMD
                             The command that starts one worker, split into words as a shell would
                             (quotes and backslashes; no variables or wildcards), such as
                             'srun --quiet -N1 replica-worker' or 'ssh node7 /opt/replica/bin/replica-worker'.
                             (env REPLICA_WORKER_COMMAND; default the replica-worker beside this
                             program, else replica-worker on PATH)
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

        RECONSTRUCT OPTIONS:
          --images DIR       The folder of photos, told by content; other files are listed and left out.
                             Required.
          --detail LEVEL     preview, reduced, medium, full or raw. (default medium)
          --work-dir DIR     Where intermediate results go; running again with the same folder resumes.
                             (default a new folder under $TMPDIR, else /tmp, printed at the start)
          --output FILE      Where the model is written. Refused until a stage makes a model: the
                             pipeline ends with Texture Mapping today.
          --stop-after STAGE
                             The last stage to run (default every stage), one of:
                             \(stageNames).
          --pairs STRATEGY   Which photos are matched: exhaustive (every pair), sequential (each with
                             its next ten and its ten most similar), retrieval (each with its 25 most
                             similar by visual words), or automatic: sequential for an ordered walk,
                             exhaustive up to 60 photos, retrieval above. (default automatic)
          --object-masking on|off
                             on keeps only the object the photos surround, dropping the table or
                             ground it stands on and the background, as the API's
                             isObjectMaskingEnabled does. (default off)
          --workers N        As for serve. (env REPLICA_WORKERS)
          --worker-command CMD
                             As for serve. (env REPLICA_WORKER_COMMAND)
          --log-level LEVEL  As for serve. (default warning: the progress display is the output)
          --progress STYLE   bar, redrawn in place, or lines, one per stage and per 5 %.
                             (default bar when stderr is a terminal, else lines)

        Progress and logs go to stderr. reconstruct exits with status
          0    done
          1    the reconstruction failed; the reason is printed
          64   the command line is wrong
          66   the images folder is missing or holds no photo
          69   no worker could start
          130  interrupted by SIGINT or SIGTERM; the work folder keeps what is done, and running
               again with the same --work-dir resumes

        PIN OPTIONS:
          --data-dir PATH    As for serve.
          --regenerate       Make a new PIN; a running server accepts it at once and forgets the old one.

        The PIN and the address are printed when the server starts. Logs go to stderr and to
        <data-dir>/logs/gateway.log. SIGINT or SIGTERM stops the server after in-flight requests finish.

        """

    /// The stages `--stop-after` takes, in pipeline order, as the help lists them.
    /// The stages' names, three to a line of the help's option column.
    private static let stageNames = stride(from: 0, to: PipelineStage.allCases.count, by: 3).map { start in
        PipelineStage.allCases[start..<min(start + 3, PipelineStage.allCases.count)].map(\.commandLineName)
            .joined(separator: ", ")
    }.joined(separator: ",\n                     ")

    public static func parse(_ arguments: [String], environment: [String: String]) throws -> GatewayCommand {
        var rest = arguments[...]
        guard let verb = rest.popFirst() else { throw UsageError("missing command: serve, reconstruct or pin") }
        switch verb {
        case "--help", "-h", "help": return .help(helpText)
        case "--version": return .version
        case "serve": return try parseServe(rest, environment: environment)
        case "reconstruct": return try parseReconstruct(rest, environment: environment)
        case "pin": return try parsePin(rest, environment: environment)
        default: throw UsageError("unknown command '\(verb)': expected serve, reconstruct or pin")
        }
    }

    private static func parseServe(_ arguments: ArraySlice<String>,
                                   environment: [String: String]) throws -> GatewayCommand {
        var settings: [String: String] = [:]
        let names = ["host", "port", "data-dir", "pin", "workers", "worker-command", "log-level", "tls-cert",
                     "tls-key", "projects-dir", "max-file-size", "max-files", "max-upload-size"]
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
        if let command = settings["worker-command"] { config.workerCommand = try CommandTemplate.split(command) }
        if let level = settings["log-level"] { config.logLevel = try logLevel(level) }
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

    private static func parseReconstruct(_ arguments: ArraySlice<String>,
                                         environment: [String: String]) throws -> GatewayCommand {
        // Only the worker settings come from the environment: on a cluster they are set once for serve and
        // reconstruct alike, while a server's log level would drown the progress display.
        var settings: [String: String] = [:]
        for name in ["workers", "worker-command"] {
            let variable = "REPLICA_" + name.uppercased().replacingAll("-", with: "_")
            if let value = environment[variable], !value.isEmpty { settings[name] = value }
        }
        let names = ["images", "detail", "work-dir", "output", "stop-after", "pairs", "object-masking", "workers",
                     "worker-command", "log-level", "progress"]
        var rest = arguments
        while let flag = rest.popFirst() {
            if flag == "--help" || flag == "-h" { return .help(helpText) }
            let (name, inline) = splitFlag(flag)
            guard flag.hasPrefix("--"), names.contains(name) else {
                throw UsageError("unknown option '\(flag)' for reconstruct")
            }
            guard let value = inline ?? rest.popFirst() else { throw UsageError("--\(name) needs a value") }
            settings[name] = value
        }
        return .reconstruct(try reconstructOptions(from: settings))
    }

    private static func reconstructOptions(from settings: [String: String]) throws -> ReconstructOptions {
        guard let images = settings["images"] else { throw UsageError("reconstruct needs --images DIR") }
        var options = ReconstructOptions(imagesDirectory: images)
        if let detail = settings["detail"] { options.detail = try detailLevel(detail) }
        options.workDirectory = settings["work-dir"]
        options.outputPath = settings["output"]
        if let stage = settings["stop-after"] { options.stopAfter = try pipelineStage(stage) }
        if let pairs = settings["pairs"] {
            guard let strategy = PairSelectionStrategy(rawValue: pairs.lowercased()) else {
                let names = PairSelectionStrategy.allCases.map(\.rawValue).joined(separator: ", ")
                throw UsageError("--pairs must be one of \(names), not '\(pairs)'")
            }
            options.pairing = strategy
        }
        if let masking = settings["object-masking"] {
            guard ["on", "off"].contains(masking.lowercased()) else {
                throw UsageError("--object-masking must be on or off, not '\(masking)'")
            }
            options.objectMasking = masking.lowercased() == "on"
        }
        if let workers = settings["workers"] { options.workers = try integer(workers, "--workers") }
        if let command = settings["worker-command"] { options.workerCommand = try CommandTemplate.split(command) }
        if let level = settings["log-level"] { options.logLevel = try logLevel(level) }
        if let style = settings["progress"] {
            guard let parsed = ProgressStyle(rawValue: style) else {
                throw UsageError("--progress must be bar or lines, not '\(style)'")
            }
            options.progressStyle = parsed
        }
        do {
            try options.validate()
        } catch let error as OptionsError {
            throw UsageError(error.description)
        }
        return options
    }

    /// A detail level in any letter case, written in lowercase; `custom` is refused with its reason.
    private static func detailLevel(_ text: String) throws -> String {
        let level = text.lowercased()
        if level == "custom" {
            throw UsageError("--detail custom has no flags on the command line; use one of "
                             + ReconstructOptions.detailLevels.joined(separator: ", "))
        }
        return level
    }

    private static func pipelineStage(_ text: String) throws -> PipelineStage {
        guard let stage = PipelineStage(name: text) else {
            let names = PipelineStage.allCases.map(\.commandLineName).joined(separator: ", ")
            throw UsageError("--stop-after must be one of \(names), not '\(text)'")
        }
        return stage
    }

    private static func logLevel(_ text: String) throws -> LogLevel {
        guard let level = LogLevel(name: text) else {
            throw UsageError("--log-level must be one of \(LogLevel.allCases.map(\.name).joined(separator: ", "))")
        }
        return level
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
