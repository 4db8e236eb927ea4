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
        ]
        for arguments in bad {
            XCTAssertThrowsError(try CommandLineInterface.parse(arguments, environment: environment), "\(arguments)") {
                XCTAssertTrue($0 is UsageError, "\(arguments): \($0)")
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
