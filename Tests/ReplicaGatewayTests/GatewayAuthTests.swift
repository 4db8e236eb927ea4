import Foundation
import ReplicaCore
import ReplicaGateway
import ReplicaTestSupport
import XCTest

/// The API's outer layer over real HTTP: health, PIN login, tokens, expiry, throttling and error bodies.
final class GatewayAuthTests: XCTestCase {
    func testHealthAnswersWithoutAuth() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let response = try gateway.request("GET", "/api/health")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Type"), "application/json")
        XCTAssertEqual(response.json as NSDictionary, ["status": "ok", "version": "1.0"])
    }

    func testHeadOfHealthSendsTheHeadersOnly() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let client = try RawClient(port: gateway.port)
        try client.send("HEAD /api/health HTTP/1.1\r\nHost: t\r\n\r\nGET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try client.readResponse(forHead: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), "31")
        // The next response follows at once: no body bytes were sent for the HEAD.
        XCTAssertEqual(try client.readResponse().text, #"{"status":"ok","version":"1.0"}"#)
    }

    func testUnknownPathIs404AndWrongMethodIs405WithJSON() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let missing = try gateway.request("GET", "/api/nothing-here")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.header("Content-Type"), "application/json")
        XCTAssertEqual(missing.json["error"] as? String, "Not found")
        let wrong = try gateway.request("DELETE", "/api/health")
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.header("Content-Type"), "application/json")
        XCTAssertEqual(wrong.header("Allow"), "GET, HEAD")
        XCTAssertNotNil(wrong.json["error"] as? String)
    }

    func testRightPinGivesATokenThatWorksInTheHeaderAndTheQuery() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let token = try gateway.token()
        XCTAssertNotNil(UUID(uuidString: token), "token \(token) is not a UUID")
        let byHeader = try gateway.request("GET", "/api/status", headers: ["Authorization": "Bearer \(token)"])
        XCTAssertEqual(byHeader.status, 200)
        XCTAssertEqual(byHeader.json["pollInterval"] as? Int, 10)
        XCTAssertEqual((byHeader.json["projects"] as? [Any])?.count, 0)
        XCTAssertEqual(try gateway.request("GET", "/api/projects?token=\(token)").status, 200)
        let lowerCaseScheme = try gateway.request("GET", "/api/projects", headers: ["Authorization": "bearer \(token)"])
        XCTAssertEqual(lowerCaseScheme.status, 200)
        let unknown = try gateway.request("GET", "/api/projects/\(UUID().uuidString)?token=\(token)")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(unknown.json["error"] as? String, "Project not found")
    }

    func testProtectedEndpointsRefuseMissingAndWrongTokens() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        for target in ["/api/status", "/api/projects", "/api/projects/\(UUID().uuidString)"] {
            let missing = try gateway.request("GET", target)
            XCTAssertEqual(missing.status, 401, target)
            XCTAssertEqual(missing.header("Content-Type"), "application/json")
            XCTAssertNotNil(missing.json["error"] as? String)
            let wrong = try gateway.request("GET", target + "?token=\(UUID().uuidString.lowercased())")
            XCTAssertEqual(wrong.status, 401, target)
            let garbage = try gateway.request("GET", target, headers: ["Authorization": "Bearer nonsense"])
            XCTAssertEqual(garbage.status, 401, target)
            let basic = try gateway.request("GET", target, headers: ["Authorization": "Basic dXNlcjpwYXNz"])
            XCTAssertEqual(basic.status, 401, target)
        }
    }

    func testWrongPinIs401AndMalformedBodyIs400() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let wrongPin = gateway.service.pin == "000000" ? "111111" : "000000"
        let wrong = try gateway.login(wrongPin)
        XCTAssertEqual(wrong.status, 401)
        XCTAssertEqual(wrong.json as NSDictionary, ["error": "Invalid PIN"])
        for body in ["{", "", "[]", #"{"pin":482193}"#, #"{"pim":"1"}"#, "not json"] {
            let response = try gateway.request("POST", "/api/auth", body: body)
            XCTAssertEqual(response.status, 400, body)
            XCTAssertEqual(response.json as NSDictionary, ["error": "Invalid request body"], body)
        }
        let huge = try gateway.request("POST", "/api/auth", body: String(repeating: " ", count: 10_000))
        XCTAssertEqual(huge.status, 413)
    }

    func testTokensExpireAfter24Hours() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let token = try gateway.token()
        gateway.clock.advance(by: 24 * 3600 - 1)
        XCTAssertEqual(try gateway.request("GET", "/api/status?token=\(token)").status, 200)
        gateway.clock.advance(by: 1)
        XCTAssertEqual(try gateway.request("GET", "/api/status?token=\(token)").status, 401)
    }

    func testSessionsSurviveARestart() throws {
        let first = try GatewayHarness()
        let token = try first.token()
        first.stop()
        let second = try GatewayHarness(dataDirectory: first.dataDirectory, clock: first.clock)
        defer { second.stop() }
        XCTAssertEqual(try second.request("GET", "/api/status", headers: ["Authorization": "Bearer \(token)"]).status,
                       200)
        XCTAssertEqual(second.service.pin, first.service.pin, "the generated PIN is kept in the data directory")
    }

    func testWrongPinsAreThrottledPerAddressAndPersist() throws {
        let gateway = try GatewayHarness()
        let pin = gateway.service.pin
        let wrongPin = pin == "000000" ? "111111" : "000000"
        for _ in 0..<4 { XCTAssertEqual(try gateway.login(wrongPin, from: "127.0.0.3").status, 401) }
        let throttled = try gateway.login(pin, from: "127.0.0.3")
        XCTAssertEqual(throttled.status, 429, "even the right PIN waits while the address is throttled")
        XCTAssertEqual(throttled.header("Retry-After"), "1")
        XCTAssertNotNil(throttled.json["error"] as? String)
        XCTAssertEqual(try gateway.login(pin, from: "127.0.0.4").status, 200, "another host is not held back")
        gateway.clock.advance(by: 1)
        XCTAssertEqual(try gateway.login(wrongPin, from: "127.0.0.3").status, 401)
        XCTAssertEqual(try gateway.login(wrongPin, from: "127.0.0.3").header("Retry-After"), "2")
        gateway.stop()

        let restarted = try GatewayHarness(dataDirectory: gateway.dataDirectory, clock: gateway.clock)
        defer { restarted.stop() }
        XCTAssertEqual(try restarted.login(pin, from: "127.0.0.3").status, 429, "the counter survived the restart")
        restarted.clock.advance(by: 2)
        XCTAssertEqual(try restarted.login(pin, from: "127.0.0.3").status, 200)
    }

    func testManyGuessingHostsReachTheCeilingAndThePinIsRegenerated() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let original = gateway.service.pin
        var newPins: [String] = []
        gateway.service.onPinRegenerated = { newPins.append($0) }
        var wrong = 0
        var host = 10
        // Three free guesses per address, many addresses: only the global ceiling stops this.
        while wrong < 100 {
            for _ in 0..<3 where wrong < 100 {
                let guess = String(format: "%06d", (Int(original)! + 1 + wrong) % 1_000_000)
                XCTAssertEqual(try gateway.login(guess, from: "127.0.1.\(host)").status, 401)
                wrong += 1
            }
            host += 1
        }
        XCTAssertEqual(newPins.count, 1)
        XCTAssertNotEqual(gateway.service.pin, original)
        XCTAssertEqual(try gateway.login(original, from: "127.0.0.5").status, 401, "the old PIN is gone")
        XCTAssertEqual(try gateway.login(gateway.service.pin, from: "127.0.0.6").status, 200)
        XCTAssertTrue(gateway.log.lines.contains { $0.contains("critical") && $0.contains("auth.failures=100") })
        XCTAssertTrue(gateway.log.lines.contains { $0.contains("warning") && $0.contains("guessing") })
        XCTAssertFalse(gateway.log.lines.joined().contains(gateway.service.pin), "a PIN reached the log")
    }

    func testAFixedPinPausesLoginsAtTheCeiling() throws {
        let gateway = try GatewayHarness { $0.fixedPin = "482193" }
        defer { gateway.stop() }
        for index in 0..<100 {
            XCTAssertEqual(try gateway.login("000000", from: "127.0.2.\(index / 3 + 1)").status, 401)
        }
        let paused = try gateway.login("482193", from: "127.0.0.7")
        XCTAssertEqual(paused.status, 503)
        XCTAssertNotNil(paused.json["error"] as? String)
    }

    func testRegeneratedPinIsHonouredWithoutARestart() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let old = gateway.service.pin
        // What `replica-link pin --regenerate` does from another process.
        let fresh = try PinStore(dataDirectory: gateway.dataDirectory).regenerate()
        XCTAssertEqual(try gateway.login(fresh).status, 200)
        XCTAssertEqual(try gateway.login(old).status, 401)
    }

    func testTokensNeverReachTheLog() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let token = try gateway.token()
        _ = try gateway.request("GET", "/api/status?token=\(token)")
        _ = try gateway.request("GET", "/api/projects", headers: ["Authorization": "Bearer \(token)"])
        Thread.sleep(forTimeInterval: 0.1)
        let log = gateway.log.lines.joined(separator: "\n")
        XCTAssertTrue(log.contains("token=REDACTED"))
        XCTAssertFalse(log.contains(token))
        XCTAssertFalse(log.contains(gateway.service.pin))
    }
}
