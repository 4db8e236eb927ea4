import Foundation
import ReplicaCore
import ReplicaTestSupport
import XCTest
@testable import ReplicaHTTP

/// The request-smuggling and malformed-framing cases that nginx, h2o and llhttp refuse, with controls they accept,
/// each sent to the real server over loopback. The table, `EdgeCases/requests.json`, is shared with
/// `scripts/http-oracle`, which sends the same bytes to nginx and to replica-link and compares the verdicts.
final class MalformedRequestTests: XCTestCase {
    struct EdgeCase: Decodable {
        var name: String
        var why: String
        var request: String
        var status: Int
    }

    static func edgeCases() throws -> [EdgeCase] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "EdgeCases/requests", withExtension: "json"))
        return try JSONDecoder().decode([EdgeCase].self, from: Data(contentsOf: url))
    }

    func testEveryRefusedCaseIsAnswered400AndClosedAndEveryControlIsServed() throws {
        let cases = try Self.edgeCases()
        XCTAssertGreaterThanOrEqual(cases.filter { $0.status == 400 }.count, 30, "the table lost its cases")
        let harness = try ServerHarness { exchange, _ in
            exchange.collectBody(limit: 1 << 20) { _ in exchange.respond(.ok, body: Array("ok".utf8)) }
        }
        defer { harness.stop() }
        for edgeCase in cases {
            let client = try RawClient(port: harness.port)
            // The bytes as they are, NULs and bare CRs included: String.utf8 keeps them.
            try client.send(edgeCase.request)
            let response = try client.readResponse()
            let context = "\(edgeCase.name): \(edgeCase.why)"
            XCTAssertEqual(response.status, edgeCase.status, context)
            guard edgeCase.status == 400 else { continue }
            XCTAssertEqual(response.header("Content-Type"), "application/json", context)
            XCTAssertNotNil(response.json["error"] as? String, context)
            XCTAssertEqual(response.header("Connection"), "close", context)
            XCTAssertTrue(client.waitForClose(timeout: 5), "\(context): the connection was left open")
        }
    }

    /// A refused request must not leave its tail to be read as a second request: the bytes after the head are
    /// never served, even when they form a valid request of their own.
    func testATailThatLooksLikeARequestIsNeverServed() throws {
        let served = Counter()
        let harness = try ServerHarness { exchange, _ in
            served.add(exchange.head.target)
            exchange.collectBody(limit: 1 << 20) { _ in exchange.respond(.ok, body: Array("ok".utf8)) }
        }
        defer { harness.stop() }
        let smuggled = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        for framing in ["Content-Length: 3\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked, gzip",
                        "Content-Length: 3\r\nContent-Length: 40"] {
            let client = try RawClient(port: harness.port)
            try client.send("POST /front HTTP/1.1\r\nHost: t\r\n\(framing)\r\n\r\n0\r\n\r\n" + smuggled)
            XCTAssertEqual(try client.readResponse().status, 400, framing)
            XCTAssertTrue(client.waitForClose(timeout: 5), framing)
        }
        XCTAssertEqual(served.values, [], "a smuggled request was served")
    }
}

/// Targets the handler saw, from the loop thread.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [String] = []

    func add(_ value: String) { lock.withLock { seen.append(value) } }

    var values: [String] { lock.withLock { seen } }
}
