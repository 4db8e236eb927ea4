import Foundation
import ReplicaCore
import ReplicaGateway
import ReplicaTestSupport
import XCTest

/// The real `replica-link` executable and real sockets: start-up output, busy ports, TLS and signals.
final class GatewayProcessTests: XCTestCase {
    /// The built executable, beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("replica-link")
    }

    /// Starts `replica-link` with `arguments` and returns it once it printed its PIN line.
    private func launch(_ arguments: [String]) throws -> (Process, port: Int, pin: String, output: Pipe) {
        let process = Process()
        process.executableURL = GatewayProcessTests.executable
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var text = ""
        let deadline = Date(timeIntervalSinceNow: 20)
        while !text.contains("PIN: ") || !text.hasSuffix("\n"), Date() < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let port = try XCTUnwrap(text.firstMatch(of: #/serving on https?://\S+:(\d+)\n/#).map { Int($0.1)! }, text)
        let pin = try XCTUnwrap(text.firstMatch(of: #/PIN: (\d{6})/#).map { String($0.1) }, text)
        return (process, port, pin, output)
    }

    func testServeStartsAnswersAndStopsCleanlyOnSIGTERM() throws {
        let directory = GatewayHarness.temporaryDirectory()
        let (process, port, pin, _) = try launch(["serve", "--host", "127.0.0.1", "--port", "0",
                                                  "--data-dir", directory])
        let client = try RawClient(port: port)
        try client.send("GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        let stored = try String(contentsOfFile: directory + "/pin", encoding: .utf8)
        XCTAssertEqual(stored.trimmingCharacters(in: .whitespacesAndNewlines), pin)
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/pin")[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let log = try String(contentsOfFile: directory + "/logs/gateway.log", encoding: .utf8)
        XCTAssertTrue(log.contains("http.path=/api/health"), log)
        XCTAssertFalse(log.contains(pin))
    }

    func testPinCommandPrintsAndRegenerates() throws {
        let directory = GatewayHarness.temporaryDirectory()
        func run(_ arguments: [String]) throws -> String {
            let process = Process()
            process.executableURL = GatewayProcessTests.executable
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0)
            return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let first = try run(["pin", "--data-dir", directory])
        XCTAssertNotNil(first.wholeMatch(of: #/\d{6}/#))
        XCTAssertEqual(try run(["pin", "--data-dir", directory]), first)
        let fresh = try run(["pin", "--regenerate", "--data-dir", directory])
        XCTAssertEqual(try run(["pin", "--data-dir", directory]), fresh)
    }

    func testASecondGatewayOnABusyPortBindsTheNextOne() throws {
        let first = try GatewayHarness()
        defer { first.stop() }
        let second = try GatewayHarness { $0.port = first.port }
        defer { second.stop() }
        XCTAssertGreaterThan(second.port, first.port)
        XCTAssertLessThanOrEqual(second.port, first.port + 100)
        XCTAssertEqual(try second.request("GET", "/api/health").status, 200)
        XCTAssertEqual(try first.request("GET", "/api/health").status, 200)
    }

    /// A gateway serving HTTPS with a fresh self-signed certificate.
    private func tlsGateway(configure: (inout GatewayConfiguration) -> Void = { _ in }) throws -> GatewayHarness {
        let directory = GatewayHarness.temporaryDirectory()
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                             "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        XCTAssertEqual(openssl.terminationStatus, 0)
        return try GatewayHarness(dataDirectory: directory) {
            $0.tlsCertificatePath = directory + "/cert.pem"
            $0.tlsKeyPath = directory + "/key.pem"
            configure(&$0)
        }
    }

    func testATrickledTLSHandshakeIsCutOffByTheHeadDeadline() throws {
        let gateway = try tlsGateway {
            $0.http.headDeadline = 1
            $0.http.sweepInterval = 0.05
        }
        defer { gateway.stop() }
        let slow = try RawClient(port: gateway.port)
        let started = Date()
        // A TLS record header announcing 512 bytes of handshake, then one byte every 50 ms.
        try slow.send([0x16, 0x03, 0x01, 0x02, 0x00])
        var cutOff = false
        while !cutOff && Date().timeIntervalSince(started) < 4 {
            cutOff = (try? slow.send([0x01])) == nil || slow.ending(timeout: 0.05) != .open
        }
        XCTAssertTrue(cutOff, "the trickling client is still connected")
        XCTAssertLessThan(Date().timeIntervalSince(started), 2.5)
        XCTAssertEqual(try curl(["-sk", "https://127.0.0.1:\(gateway.port)/api/health"]),
                       #"{"status":"ok","version":"1.0"}"#)
    }

    func testHTTPSWithACertificateAndKey() throws {
        let gateway = try tlsGateway()
        defer { gateway.stop() }
        let body = try curl(["-sk", "https://127.0.0.1:\(gateway.port)/api/health"])
        XCTAssertEqual(body, #"{"status":"ok","version":"1.0"}"#)
        let auth = try curl(["-sk", "-X", "POST", "-H", "Content-Type: application/json",
                             "-d", #"{"pin":"\#(gateway.service.pin)"}"#, "https://127.0.0.1:\(gateway.port)/api/auth"])
        let token = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(auth.utf8)) as? [String: Any])?["token"]
                                  as? String)
        let status = try curl(["-sk", "-H", "Authorization: Bearer \(token)",
                               "https://127.0.0.1:\(gateway.port)/api/status"])
        XCTAssertTrue(status.contains("pollInterval"), status)
        // Plain HTTP to the TLS port is not answered as HTTP, and the server carries on.
        let plain = try RawClient(port: gateway.port)
        try plain.send("GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertTrue(plain.waitForClose(timeout: 5))
        XCTAssertEqual(try curl(["-sk", "https://127.0.0.1:\(gateway.port)/api/health"]), body)
    }

    func testBadTLSFilesStopTheStartWithAClearError() throws {
        XCTAssertThrowsError(try GatewayHarness {
            $0.tlsCertificatePath = "/nonexistent/cert.pem"
            $0.tlsKeyPath = "/nonexistent/key.pem"
        }) { XCTAssertTrue("\($0)".contains("cert.pem"), "\($0)") }
    }

    private func curl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["--max-time", "10"] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "curl \(arguments)")
        return String(decoding: data, as: UTF8.self)
    }
}
