import Foundation
import ReplicaCore
import ReplicaGateway
import XCTest

/// `replica-link`'s command line: a contract that scripts and operators depend on.
final class CommandLineTests: XCTestCase {
    private let environment = ["HOME": "/home/someone"]

    func testHelpTextMatchesTheGoldenFile() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Golden/help", withExtension: "txt"))
        XCTAssertEqual(CommandLineInterface.helpText, try String(contentsOf: url, encoding: .utf8))
        XCTAssertEqual(try CommandLineInterface.parse(["serve", "--help"], environment: environment),
                       .help(CommandLineInterface.helpText))
    }

    func testDefaults() throws {
        guard case .serve(let config) = try CommandLineInterface.parse(["serve"], environment: environment) else {
            return XCTFail("not serve")
        }
        XCTAssertEqual(config.host, "0.0.0.0")
        XCTAssertEqual(config.port, 8247)
        XCTAssertEqual(config.dataDirectory, "/home/someone/.local/share/replica-link")
        XCTAssertNil(config.fixedPin)
        XCTAssertEqual(config.workers, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertEqual(config.logLevel, .info)
        guard case .serve(let xdg) = try CommandLineInterface.parse(
            ["serve"], environment: ["HOME": "/h", "XDG_DATA_HOME": "/data"]) else { return XCTFail("not serve") }
        XCTAssertEqual(xdg.dataDirectory, "/data/replica-link")
    }

    func testFlagsOverrideEnvironmentVariables() throws {
        let env = ["HOME": "/h", "REPLICA_PORT": "9000", "REPLICA_HOST": "127.0.0.1", "REPLICA_PIN": "123456",
                   "REPLICA_WORKERS": "3", "REPLICA_LOG_LEVEL": "debug", "REPLICA_DATA_DIR": "/srv/replica"]
        guard case .serve(let fromEnv) = try CommandLineInterface.parse(["serve"], environment: env) else {
            return XCTFail("not serve")
        }
        XCTAssertEqual([fromEnv.host, "\(fromEnv.port)", fromEnv.fixedPin, "\(fromEnv.workers)", fromEnv.dataDirectory],
                       ["127.0.0.1", "9000", "123456", "3", "/srv/replica"])
        XCTAssertEqual(fromEnv.logLevel, .debug)
        guard case .serve(let flags) = try CommandLineInterface.parse(
            ["serve", "--port", "9100", "--host=::1", "--pin", "654321", "--workers", "1", "--log-level", "warning",
             "--data-dir", "/tmp/x"], environment: env) else { return XCTFail("not serve") }
        XCTAssertEqual([flags.host, "\(flags.port)", flags.fixedPin, "\(flags.workers)", flags.dataDirectory],
                       ["::1", "9100", "654321", "1", "/tmp/x"])
        XCTAssertEqual(flags.logLevel, .warning)
    }

    func testUploadLimitsAndTheProjectsDirectory() throws {
        guard case .serve(let config) = try CommandLineInterface.parse(
            ["serve", "--max-file-size", "500M", "--max-files=20", "--max-upload-size", "2g",
             "--projects-dir", "/mnt/library"], environment: ["HOME": "/h", "REPLICA_MAX_FILES": "7"]) else {
            return XCTFail("not serve")
        }
        XCTAssertEqual(config.uploads.maxFileBytes, 500 << 20)
        XCTAssertEqual(config.uploads.maxFiles, 20)
        XCTAssertEqual(config.uploads.maxRequestBytes, 2 << 30)
        XCTAssertEqual(config.effectiveProjectsDirectory, "/mnt/library")
        guard case .serve(let defaults) = try CommandLineInterface.parse(["serve", "--data-dir", "/d"],
                                                                         environment: ["HOME": "/h"]) else {
            return XCTFail("not serve")
        }
        XCTAssertEqual(defaults.effectiveProjectsDirectory, "/d/projects")
        XCTAssertEqual(defaults.uploads, UploadLimits())
        XCTAssertEqual(try CommandLineInterface.byteCount("1500", "--x"), 1500)
        XCTAssertEqual(try CommandLineInterface.byteCount("64KB", "--x"), 65536)
        XCTAssertEqual(try CommandLineInterface.byteCount("1T", "--x"), 1 << 40)
        for bad in ["", "0", "-1", "1.5G", "G", "12Q", "99999999999999999999T"] {
            XCTAssertThrowsError(try CommandLineInterface.byteCount(bad, "--x"), bad)
        }
    }

    func testBadCommandLinesAreUsageErrors() {
        let bad: [[String]] = [
            [], ["bake"], ["serve", "--port"], ["serve", "--port", "eighty"], ["serve", "--port", "70000"],
            ["serve", "--pin", "12345"], ["serve", "--pin", "abcdef"], ["serve", "--workers", "0"],
            ["serve", "--log-level", "loud"], ["serve", "--tls-cert", "/c"], ["serve", "--frobnicate"],
            ["pin", "--sideways"], ["serve", "--host", "example.org"], ["serve", "--host", "300.1.1.1"],
            ["serve", "--max-files", "0"], ["serve", "--max-file-size", "big"], ["serve", "--projects-dir="],
            ["serve", "--worker-command", "run \"open"], ["serve", "--worker-command="], ["serve", "--worker-command"],
        ]
        for arguments in bad {
            XCTAssertThrowsError(try CommandLineInterface.parse(arguments, environment: environment), "\(arguments)") {
                XCTAssertTrue($0 is UsageError, "\(arguments): \($0)")
            }
        }
    }

    func testWorkerCommandComesFromTheEnvironmentOrTheFlag() throws {
        let env = ["HOME": "/h", "REPLICA_WORKER_COMMAND": "ssh node7 '/opt/replica/bin/replica-worker'"]
        guard case .serve(let fromEnv) = try CommandLineInterface.parse(["serve"], environment: env),
              case .serve(let fromFlag) = try CommandLineInterface.parse(
                ["serve", "--worker-command=srun --quiet -N1 replica-worker"], environment: env),
              case .serve(let byDefault) = try CommandLineInterface.parse(["serve"], environment: environment) else {
            return XCTFail("not serve")
        }
        XCTAssertEqual(fromEnv.workerCommand, ["ssh", "node7", "/opt/replica/bin/replica-worker"])
        XCTAssertEqual(fromFlag.workerCommand, ["srun", "--quiet", "-N1", "replica-worker"])
        XCTAssertNil(byDefault.workerCommand, "nil: the runner picks the worker beside the executable")

        guard case .reconstruct(let reconstruct) = try CommandLineInterface.parse(
            ["reconstruct", "--images", "p"], environment: env.merging(["REPLICA_WORKERS": "5"]) { $1 }) else {
            return XCTFail("not reconstruct")
        }
        XCTAssertEqual(reconstruct.workerCommand, fromEnv.workerCommand)
        XCTAssertEqual(reconstruct.workers, 5)

        var config = GatewayConfiguration(dataDirectory: "/d")
        config.workerCommand = []
        XCTAssertThrowsError(try config.validate())
        config.workerCommand = ["replica-worker"]
        XCTAssertNoThrow(try config.validate())
    }

    func testReconstructDefaults() throws {
        let env = ["HOME": "/h", "REPLICA_LOG_LEVEL": "debug", "REPLICA_DATA_DIR": "/srv", "REPLICA_PORT": "1"]
        let command = try CommandLineInterface.parse(["reconstruct", "--images", "photos"], environment: env)
        XCTAssertEqual(command, .reconstruct(ReconstructOptions(imagesDirectory: "photos")))
        guard case .reconstruct(let options) = command else { return XCTFail("not reconstruct") }
        XCTAssertEqual(options.imagesDirectory, "photos")
        XCTAssertEqual(options.detail, "medium")
        XCTAssertNil(options.workDirectory)
        XCTAssertNil(options.outputPath)
        XCTAssertNil(options.stopAfter)
        XCTAssertEqual(options.workers, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertNil(options.workerCommand)
        XCTAssertEqual(options.logLevel, .warning, "a server's REPLICA_LOG_LEVEL would drown the progress display")
        XCTAssertNil(options.progressStyle)
        XCTAssertEqual(options.pairing, .automatic)
    }

    func testReconstructTakesAPairSelectionStrategy() throws {
        for strategy in PairSelectionStrategy.allCases {
            let command = try CommandLineInterface.parse(["reconstruct", "--images", "p", "--pairs",
                                                          strategy.rawValue.uppercased()], environment: [:])
            guard case .reconstruct(let options) = command else { return XCTFail("not reconstruct") }
            XCTAssertEqual(options.pairing, strategy)
        }
        XCTAssertThrowsError(try CommandLineInterface.parse(["reconstruct", "--images", "p", "--pairs", "vocab"],
                                                            environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("--pairs must be one of automatic, exhaustive, sequential, retrieval"),
                          "\(error)")
        }
    }

    func testReconstructFlagsInBothForms() throws {
        let command = try CommandLineInterface.parse(
            ["reconstruct", "--images=../shoot 1", "--detail", "FULL", "--work-dir", "work", "--output=out/model.usdz",
             "--stop-after", "Pre-Processing", "--workers=3", "--worker-command", #"ssh "node 7" replica-worker"#,
             "--log-level=info", "--progress", "lines"], environment: environment)
        var expected = ReconstructOptions(imagesDirectory: "../shoot 1", detail: "full", workDirectory: "work",
                                          outputPath: "out/model.usdz", stopAfter: .preProcessing, workers: 3,
                                          workerCommand: ["ssh", "node 7", "replica-worker"], logLevel: .info,
                                          progressStyle: .lines)
        XCTAssertEqual(command, .reconstruct(expected), "relative paths stay as given")
        for level in ReconstructOptions.detailLevels {
            expected = ReconstructOptions(imagesDirectory: "p", detail: level, stopAfter: .preProcessing,
                                          progressStyle: .bar)
            XCTAssertEqual(try CommandLineInterface.parse(
                ["reconstruct", "--detail=\(level)", "--images", "p", "--stop-after=pre-processing",
                 "--progress=bar"], environment: environment), .reconstruct(expected))
        }
        XCTAssertEqual(try CommandLineInterface.parse(["reconstruct", "--images", "p", "--help"],
                                                      environment: environment), .help(CommandLineInterface.helpText))
    }

    func testBadReconstructCommandLinesSayWhatIsWrong() {
        let env = ["HOME": "/h"]
        let images = ["--images", "p"]
        let bad: [([String], String)] = [
            ([], "--images"), (["--images"], "--images needs a value"), (["--images="], "--images"),
            (images + ["--detail", "custom"], "custom"),
            (images + ["--detail", "ultra"], "preview, reduced, medium, full, raw"),
            (images + ["--stop-after", "meshing"], "pre-processing"),
            (images + ["--stop-after"], "--stop-after needs a value"),
            (images + ["--workers", "0"], "--workers"), (images + ["--workers", "many"], "--workers"),
            (images + ["--log-level", "loud"], "trace"), (images + ["--progress", "fancy"], "bar or lines"),
            (images + ["--work-dir="], "--work-dir"), (images + ["--output="], "--output"),
            (images + ["--worker-command", "'open"], "--worker-command"),
            (images + ["--worker-command="], "--worker-command"),
            (images + ["--worker-command", "''"], "--worker-command"),
            (images + ["--port", "1"], "'--port'"), (images + ["photos"], "'photos'"),
            (images + ["--frobnicate"], "'--frobnicate'"),
        ]
        for (extra, message) in bad {
            let arguments = ["reconstruct"] + extra
            XCTAssertThrowsError(try CommandLineInterface.parse(arguments, environment: env), "\(arguments)") {
                XCTAssertTrue($0 is UsageError, "\(arguments): \($0)")
                XCTAssertTrue("\($0)".contains(message), "\(arguments): '\($0)' lacks '\(message)'")
            }
        }
        for variable in [["REPLICA_WORKER_COMMAND": "run \""], ["REPLICA_WORKERS": "-2"]] {
            for verb in [["serve"], ["reconstruct", "--images", "p"]] {
                XCTAssertThrowsError(try CommandLineInterface.parse(verb, environment: env.merging(variable) { $1 }),
                                     "\(verb) \(variable)") { XCTAssertTrue($0 is UsageError, "\($0)") }
            }
        }
    }

    func testPinCommand() throws {
        XCTAssertEqual(try CommandLineInterface.parse(["pin", "--regenerate", "--data-dir", "/d"],
                                                      environment: environment),
                       .pin(dataDirectory: "/d", regenerate: true))
        XCTAssertEqual(try CommandLineInterface.parse(["pin"], environment: ["HOME": "/h", "REPLICA_DATA_DIR": "/e"]),
                       .pin(dataDirectory: "/e", regenerate: false))
    }
}
