import Foundation
import ReplicaHTTP
import ReplicaTestSupport
import XCTest

/// Idle sockets and slow clients must not take `/api/health` away from everyone else.
final class GatewayResilienceTests: XCTestCase {
    func testThousandIdleConnectionsAndASlowlorisDoNotStopHealth() throws {
        _ = raiseOpenFileLimit()
        let gateway = try GatewayHarness {
            $0.http.headDeadline = 1.5
            $0.http.sweepInterval = 0.05
        }
        defer { gateway.stop() }
        // The idle crowd comes from several loopback addresses, the way many hosts on a network would.
        let idle = try (0..<1000).map { try RawClient(port: gateway.port, from: "127.0.3.\($0 % 4 + 1)") }
        let slow = try RawClient(port: gateway.port, from: "127.0.4.1")
        let started = Date()
        var slowCutOff = false
        var healthAnswers = 0
        let slowRequest = Array(("GET /api/health HTTP/1.1\r\nHost: t\r\nX-Padding: "
                                 + String(repeating: "p", count: 400)).utf8)
        for byte in slowRequest where Date().timeIntervalSince(started) < 4 {
            try slow.send([byte])
            // The answer to the slow client, if it came, is read at once, before a reset could discard it.
            if slow.ending(timeout: 0.001) != .open || !slow.unread.isEmpty { slowCutOff = true; break }
            let response = try gateway.request("GET", "/api/health", from: "127.0.5.1")
            XCTAssertEqual(response.status, 200)
            healthAnswers += 1
            Thread.sleep(forTimeInterval: 0.05)
        }
        let cutAfter = Date().timeIntervalSince(started)
        XCTAssertTrue(slowCutOff, "the slow client was not cut off")
        XCTAssertGreaterThanOrEqual(cutAfter, 1.4)
        XCTAssertLessThan(cutAfter, 3)
        XCTAssertTrue(String(decoding: slow.unread, as: UTF8.self).hasPrefix("HTTP/1.1 408"))
        XCTAssertGreaterThan(healthAnswers, 10)
        XCTAssertEqual(idle.count, 1000)
    }
}
