import Foundation
import ReplicaCore
import ReplicaGateway
import ReplicaTestSupport
import XCTest

/// A real gateway on a loopback port, with a data directory of its own and a clock the test moves.
final class GatewayHarness: @unchecked Sendable {
    let service: GatewayService
    let clock: ManualClock
    let dataDirectory: String
    let log = CapturingSink()
    private let finished = DispatchSemaphore(value: 0)
    /// Harnesses alive per data directory, and the directories a harness made itself: such a directory is removed
    /// when the last harness on it goes (a test may restart a second one on it before the first is released).
    private static let directories = NSLock()
    nonisolated(unsafe) private static var users: [String: Int] = [:]
    nonisolated(unsafe) private static var made: Set<String> = []

    init(dataDirectory: String? = nil, clock: ManualClock = ManualClock(),
         configure: (inout GatewayConfiguration) -> Void = { _ in }) throws {
        let path = dataDirectory ?? GatewayHarness.temporaryDirectory()
        self.dataDirectory = path
        Self.directories.withLock {
            if dataDirectory == nil { Self.made.insert(path) }
            Self.users[path, default: 0] += 1
        }
        self.clock = clock
        var configuration = GatewayConfiguration(dataDirectory: self.dataDirectory)
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.logLevel = .debug
        configure(&configuration)
        service = try GatewayService(configuration: configuration, clock: clock, logSink: log)
        try service.start()
        let service = self.service
        let done = finished
        Thread.detachNewThread {
            service.run()
            done.signal()
        }
    }

    var port: Int { service.port }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "replica-gateway-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func stop() {
        service.requestStop()
        XCTAssertEqual(finished.wait(timeout: .now() + 20), .success, "gateway did not stop")
    }

    deinit {
        let last = Self.directories.withLock {
            Self.users[dataDirectory, default: 1] -= 1
            guard Self.users[dataDirectory] == 0 else { return false }
            Self.users[dataDirectory] = nil
            return Self.made.remove(dataDirectory) != nil
        }
        if last { try? FileManager.default.removeItem(atPath: dataDirectory) }
    }

    /// Sends one request on a new connection and reads the answer.
    func request(_ method: String, _ target: String, headers: [String: String] = [:], body: String? = nil,
                 from source: String? = nil) throws -> RawResponse {
        let client = try RawClient(port: port, from: source)
        var text = "\(method) \(target) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        try client.send(text)
        return try client.readResponse()
    }

    /// Logs in with `pin` and returns the response.
    func login(_ pin: String, from source: String? = nil) throws -> RawResponse {
        try request("POST", "/api/auth", headers: ["Content-Type": "application/json"],
                    body: #"{"pin":"\#(pin)"}"#, from: source)
    }

    /// A fresh token for the current PIN.
    func token() throws -> String {
        let response = try login(service.pin)
        XCTAssertEqual(response.status, 200)
        return try XCTUnwrap(response.json["token"] as? String)
    }
}
