import Foundation
import ReplicaCore
import XCTest

final class RouterTests: XCTestCase {
    private func router() -> Router<String> {
        var router = Router<String>()
        router.add(.get, "/api/projects", "list")
        router.add(.post, "/api/projects", "create")
        router.add(.get, "/api/projects/:id", "get")
        router.add(.put, "/api/projects/:id", "rename")
        router.add(.get, "/api/projects/:id/images/download", "zip")
        router.add(.get, "/api/projects/:id/images/:filename", "thumbnail")
        return router
    }

    private func found(_ match: Router<String>.Match) -> (String, [String: String])? {
        if case .found(let name, let parameters) = match { return (name, parameters) }
        return nil
    }

    func testLiteralSegmentsWinOverParameters() throws {
        let zip = try XCTUnwrap(found(router().match(.get, path: "/api/projects/abc/images/download")))
        XCTAssertEqual(zip.0, "zip")
        XCTAssertEqual(zip.1, ["id": "abc"])
        let thumbnail = try XCTUnwrap(found(router().match(.get, path: "/api/projects/abc/images/p1.jpg")))
        XCTAssertEqual(thumbnail.0, "thumbnail")
        XCTAssertEqual(thumbnail.1, ["id": "abc", "filename": "p1.jpg"])
    }

    func testParametersArePercentDecoded() throws {
        let match = try XCTUnwrap(found(router().match(.get, path: "/api/projects/x/images/my%20photo%2B1.jpg")))
        XCTAssertEqual(match.1["filename"], "my photo+1.jpg")
        XCTAssertEqual(router().match(.get, path: "/api/projects/x/images/bad%zz").isNotFound, true)
    }

    func testMethodsAreDistinguished() throws {
        XCTAssertEqual(found(router().match(.post, path: "/api/projects"))?.0, "create")
        XCTAssertEqual(found(router().match(.put, path: "/api/projects/7"))?.0, "rename")
        guard case .methodNotAllowed(let allowed) = router().match(.delete, path: "/api/projects/7") else {
            return XCTFail("expected 405")
        }
        XCTAssertEqual(allowed, [.get, .head, .put])
    }

    func testHeadFallsBackToGet() {
        XCTAssertEqual(found(router().match(.head, path: "/api/projects"))?.0, "list")
    }

    func testUnknownPathsAreNotFound() {
        for path in ["/", "/api", "/api/projects/a/b", "/api/projects/a/images", "/api/projectsX"] {
            XCTAssertTrue(router().match(.get, path: Substring(path)).isNotFound, path)
        }
    }

    func testRepeatedAndTrailingSlashesAreIgnored() {
        XCTAssertEqual(found(router().match(.get, path: "/api//projects/"))?.0, "list")
    }

    func testQueryParsing() {
        let pairs = parseQuery("token=a%2Fb&deleteFiles=true&name=two+words&flag&bad=%zz")
        XCTAssertEqual(pairs.map(\.name), ["token", "deleteFiles", "name", "flag"])
        XCTAssertEqual(pairs.map(\.value), ["a/b", "true", "two words", ""])
    }
}

extension Router.Match {
    var isNotFound: Bool {
        if case .notFound = self { return true }
        return false
    }
}

final class LoggerTests: XCTestCase {
    func testLineFormat() {
        let line = Logger.format(level: .warning, message: "port in use", metadata: ["http.port": "8247",
                                 "note": "a \"quoted\" value"], time: Date(timeIntervalSince1970: 1_764_761_483.25))
        let expected = #"2025-12-03T11:31:23.250Z warning "port in use" http.port=8247 note="a \"quoted\" value""#
        XCTAssertEqual(line, expected)
    }

    func testControlCharactersCannotForgeLines() {
        let line = Logger.format(level: .info, message: "m", metadata: ["path": "/x\ninfo forged"], time: Date())
        XCTAssertFalse(line.contains("\n"))
        XCTAssertTrue(line.hasSuffix(#"path="/x\ninfo forged""#), line)
    }

    func testTokensAreRedactedFromTargets() {
        XCTAssertEqual(redactSecrets(inTarget: "/api/x?token=abc&format=glb"), "/api/x?token=REDACTED&format=glb")
        XCTAssertEqual(redactSecrets(inTarget: "/api/x?%74oken=abc"), "/api/x?%74oken=REDACTED")
        XCTAssertEqual(redactSecrets(inTarget: "/api/x?TOKEN=abc"), "/api/x?TOKEN=REDACTED")
        XCTAssertEqual(redactSecrets(inTarget: "/api/x"), "/api/x")
    }

    func testLevelsFilter() {
        final class Sink: LogSink, @unchecked Sendable {
            var lines: [String] = []
            func write(line: String, level: LogLevel) { lines.append(line) }
        }
        let sink = Sink()
        let logger = Logger(sink: sink, minimumLevel: .info).with("request.id", "r-1")
        logger.debug("hidden")
        logger.info("shown")
        XCTAssertEqual(sink.lines.count, 1)
        XCTAssertTrue(sink.lines[0].hasSuffix("info shown request.id=r-1"))
    }
}
