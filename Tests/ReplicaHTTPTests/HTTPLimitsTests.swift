import Foundation
import ReplicaCore
import ReplicaTestSupport
import XCTest
@testable import ReplicaHTTP

/// Limits, deadlines and connection caps, each against the real server over loopback.
final class HTTPLimitsTests: XCTestCase {
    static func ok(_ exchange: HTTPExchange, _ harness: ServerHarness) {
        exchange.collectBody(limit: 1 << 20) { _ in exchange.respond(.ok, body: Array("ok".utf8)) }
    }

    /// A server with a fast sweep, so deadlines of a fraction of a second are met on time.
    private func fastSweepHarness(_ configure: (inout HTTPServerOptions) -> Void) throws -> ServerHarness {
        var options = HTTPServerOptions()
        options.sweepInterval = 0.05
        configure(&options)
        return try ServerHarness(options: options, handler: HTTPLimitsTests.ok)
    }

    /// Sends `request` and expects `status` with a JSON error, then the connection closed.
    private func expectRejection(_ request: String, status: Int, file: StaticString = #filePath,
                                 line: UInt = #line) throws {
        let harness = try ServerHarness(handler: HTTPLimitsTests.ok)
        defer { harness.stop() }
        let client = try RawClient(port: harness.port)
        try client.send(request)
        let response = try client.readResponse()
        XCTAssertEqual(response.status, status, file: file, line: line)
        XCTAssertEqual(response.header("Content-Type"), "application/json", file: file, line: line)
        XCTAssertNotNil(response.json["error"] as? String, file: file, line: line)
        XCTAssertEqual(response.header("Connection"), "close", file: file, line: line)
        XCTAssertTrue(client.waitForClose(timeout: 5), "connection left open", file: file, line: line)
    }

    func testOversizedRequestLineIs414() throws {
        try expectRejection("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: t\r\n\r\n", status: 414)
    }

    func testOversizedHeaderFieldIs431() throws {
        try expectRejection("GET / HTTP/1.1\r\nHost: t\r\nX: " + String(repeating: "b", count: 9000) + "\r\n\r\n",
                            status: 431)
    }

    func testTooManyHeaderFieldsIs431() throws {
        let fields = (0..<101).map { "X-\($0): v\r\n" }.joined()
        try expectRejection("GET / HTTP/1.1\r\nHost: t\r\n" + fields + "\r\n", status: 431)
    }

    func testOversizedHeaderSectionIs431() throws {
        let fields = (0..<40).map { "X-\($0): " + String(repeating: "c", count: 1000) + "\r\n" }.joined()
        try expectRejection("GET / HTTP/1.1\r\nHost: t\r\n" + fields + "\r\n", status: 431)
    }

    func testSlowlorisIsCutOffWhileOthersAreServed() throws {
        let harness = try fastSweepHarness { $0.headDeadline = 1 }
        defer { harness.stop() }
        let slow = try RawClient(port: harness.port)
        let started = Date()
        let request = Array(("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + String(repeating: "z", count: 200)).utf8)
        var cutOff = false
        for byte in request where Date().timeIntervalSince(started) < 3 {
            // Each byte is well inside any per-read timeout; only a deadline for the whole head stops this.
            try slow.send([byte])
            if slow.ending(timeout: 0.001) != .open || !slow.unread.isEmpty { cutOff = true; break }
            let other = try RawClient(port: harness.port)
            try other.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            XCTAssertEqual(try other.readResponse(timeout: 2).status, 200)
            Thread.sleep(forTimeInterval: 0.05)
        }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertTrue(cutOff, "slow client still connected after \(elapsed) s")
        XCTAssertGreaterThanOrEqual(elapsed, 0.9)
        XCTAssertLessThan(elapsed, 2)
        XCTAssertTrue(String(decoding: slow.unread, as: UTF8.self).hasPrefix("HTTP/1.1 408"))
    }

    func testStalledBodyTimesOut() throws {
        let harness = try fastSweepHarness { $0.bodyInactivityTimeout = 0.5 }
        defer { harness.stop() }
        let client = try RawClient(port: harness.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
        XCTAssertEqual(try client.readResponse(timeout: 5).status, 408)
        XCTAssertTrue(client.waitForClose(timeout: 5))
    }

    func testTrickledBodyBelowTheMinimumRateIsCutOff() throws {
        let harness = try fastSweepHarness {
            $0.minimumBodyRate = 1000
            $0.bodyRateGracePeriod = 0.5
        }
        defer { harness.stop() }
        let client = try RawClient(port: harness.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        var cutOff = false
        for _ in 0..<40 where !cutOff {
            try client.send("x")
            cutOff = client.ending(timeout: 0.05) != .open || !client.unread.isEmpty
        }
        XCTAssertTrue(cutOff)
        XCTAssertTrue(String(decoding: client.unread, as: UTF8.self).hasPrefix("HTTP/1.1 408"))
    }

    func testIdleConnectionIsClosedAfterTheKeepAliveTimeout() throws {
        let harness = try fastSweepHarness { $0.keepAliveIdleTimeout = 0.3 }
        defer { harness.stop() }
        let client = try RawClient(port: harness.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        XCTAssertTrue(client.waitForClose(timeout: 3))
    }

    func testAtThePerAddressCapTheLongestIdleConnectionMakesRoom() throws {
        var options = HTTPServerOptions()
        options.maxConnectionsPerAddress = 4
        let harness = try ServerHarness(options: options, handler: HTTPLimitsTests.ok)
        defer { harness.stop() }
        var idle: [RawClient] = []
        for _ in 0..<4 {
            idle.append(try RawClient(port: harness.port))
            Thread.sleep(forTimeInterval: 0.02)
        }
        // One of the four is in the middle of a request: it is not idle and must not be the one closed.
        try idle[0].send("GET / HTTP/1.1\r\n")
        Thread.sleep(forTimeInterval: 0.1)
        let active = try RawClient(port: harness.port)
        try active.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try active.readResponse().status, 200)
        XCTAssertTrue(idle[1].waitForClose(timeout: 2), "the longest-idle connection stays open")
        try idle[0].send("Host: t\r\n\r\n")
        XCTAssertEqual(try idle[0].readResponse().status, 200)
    }

    func testAtTheGlobalCapTheLongestIdleConnectionMakesRoom() throws {
        var options = HTTPServerOptions()
        options.maxConnections = 3
        let harness = try ServerHarness(options: options, handler: HTTPLimitsTests.ok)
        defer { harness.stop() }
        let oldest = try RawClient(port: harness.port, from: "127.0.0.2")
        Thread.sleep(forTimeInterval: 0.05)
        let others = try (0..<2).map { _ in try RawClient(port: harness.port, from: "127.0.0.3") }
        Thread.sleep(forTimeInterval: 0.05)
        let active = try RawClient(port: harness.port, from: "127.0.0.4")
        try active.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try active.readResponse().status, 200)
        XCTAssertTrue(oldest.waitForClose(timeout: 2), "the longest-idle connection stays open")
        XCTAssertEqual(others.count, 2)
    }

    func testConnectionIsClosedAfterItsLifetime() throws {
        var options = HTTPServerOptions()
        options.maxConnectionLifetime = 0.3
        // A slow sweep, so the limit is met at the request boundary rather than by closing while idle.
        options.sweepInterval = 5
        let harness = try ServerHarness(options: options, handler: HTTPLimitsTests.ok)
        defer { harness.stop() }
        let client = try RawClient(port: harness.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertNil(try client.readResponse().header("Connection"))
        Thread.sleep(forTimeInterval: 0.4)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try client.readResponse().header("Connection"), "close")
        XCTAssertTrue(client.waitForClose(timeout: 2))
    }

    func testThousandIdleConnectionsDoNotLockOutAClient() throws {
        let harness = try ServerHarness(handler: HTTPLimitsTests.ok)
        defer { harness.stop() }
        _ = raiseOpenFileLimit()
        let idle = try (0..<1000).map { _ in try RawClient(port: harness.port) }
        let client = try RawClient(port: harness.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try client.readResponse(timeout: 5).status, 200)
        XCTAssertEqual(idle.count, 1000)
    }
}
