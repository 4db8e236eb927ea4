import ReplicaTestSupport
import XCTest
@testable import ReplicaCore

// Each case keeps the raw request beside what the parser must make of it. In inputs, `‸` marks the byte
// where parsing must fail; it is removed before feeding. Every case runs whole, one byte at a time, and in
// seeded random splits, and every split must give the same trace as the whole input.

/// A request the parser should report.
private struct Expected {
    var method: String
    var target: String
    var version = HTTPVersion.http1_1
    /// Fields that must be present, each with exactly these values in order.
    var headers: KeyValuePairs<String, String> = [:]
    /// How many fields the head must hold in all; nil to leave it unchecked.
    var fieldCount: Int?
    var framing = HTTPBodyFraming.none
    var body = ""
    var keepAlive = true
    var expectsContinue = false
}

/// One specification: raw bytes, the requests they hold, and the failure that ends them, if any.
private struct ParserCase {
    var name: String
    var input: [UInt8]
    var requests: [Expected]
    var failure: (status: Int, offset: Int)?
    var limits = HTTPParserLimits()
    /// Whether the input ends between messages, so the parser must be idle after it.
    var endsIdle = true

    /// A case whose input has no fault.
    init(_ name: String, _ text: String, _ requests: [Expected], limits: HTTPParserLimits = HTTPParserLimits()) {
        self.name = name
        self.input = Array(text.utf8)
        self.requests = requests
        self.limits = limits
        precondition(!text.contains("‸"), "\(name): a fault marker in a case that should succeed")
    }

    /// A case that must fail with `status` at the byte after the `‸` marker, after reporting `requests`.
    init(_ name: String, _ text: String, fails status: Int, after requests: [Expected] = [],
         limits: HTTPParserLimits = HTTPParserLimits()) {
        let parts = text.components(separatedBy: "‸")
        precondition(parts.count == 2, "\(name): a failing case needs exactly one ‸ marker")
        self.name = name
        self.input = Array(parts.joined().utf8)
        self.requests = requests
        self.failure = (status, parts[0].utf8.count)
        self.limits = limits
    }

    /// A case built from bytes, for inputs a string literal cannot hold or that are generated.
    init(_ name: String, bytes: [UInt8], requests: [Expected], failure: (status: Int, offset: Int)? = nil,
         endsIdle: Bool = true, limits: HTTPParserLimits = HTTPParserLimits()) {
        self.name = name
        self.endsIdle = endsIdle
        self.input = bytes
        self.requests = requests
        self.failure = failure
        self.limits = limits
    }
}

private func get(_ target: String = "/", _ headers: KeyValuePairs<String, String> = ["Host": "x"]) -> Expected {
    Expected(method: "GET", target: target, headers: headers)
}

private func post(_ body: String, framing: HTTPBodyFraming, target: String = "/") -> Expected {
    Expected(method: "POST", target: target, framing: framing, body: body)
}

// MARK: - The specification

private let validCases: [ParserCase] = [
    ParserCase("simple GET", "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n",
               [Expected(method: "GET", target: "/api/health", headers: ["Host": "x"], fieldCount: 1)]),
    ParserCase("HEAD with query", "HEAD /files/a.ply?download=1 HTTP/1.1\r\nHost: example.org\r\n\r\n",
               [Expected(method: "HEAD", target: "/files/a.ply?download=1", headers: ["Host": "example.org"])]),
    ParserCase("extension method", "PROPFIND /dav HTTP/1.1\r\nHost: x\r\n\r\n",
               [Expected(method: "PROPFIND", target: "/dav")]),
    ParserCase("OPTIONS with asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
               [Expected(method: "OPTIONS", target: "*")]),
    ParserCase("absolute-form kept as sent", "GET http://example.org/a?b HTTP/1.1\r\nHost: example.org\r\n\r\n",
               [get("http://example.org/a?b", ["Host": "example.org"])]),
    ParserCase("POST with Content-Length",
               "POST /api/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + "Content-Length: 13\r\n\r\n{\"name\":\"a\"}\n",
               [Expected(method: "POST", target: "/api/projects",
                         headers: ["Content-Type": "application/json", "Content-Length": "13"],
                         framing: .length(13), body: "{\"name\":\"a\"}\n")]),
    ParserCase("Content-Length zero", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
               [post("", framing: .length(0))]),
    ParserCase("Content-Length with leading zeros, 18 digits",
               "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 000000000000000005\r\n\r\nhello",
               [post("hello", framing: .length(5))]),
    ParserCase("chunked with extensions and trailers",
               "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + "5;name=value\r\nhello\r\n6 ; ext=\"q v\"\r\n world\r\nA\r\n0123456789\r\n"
                   + "0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n",
               [Expected(method: "POST", target: "/upload", fieldCount: 2, framing: .chunked,
                         body: "hello world0123456789")]),
    ParserCase("chunked, case and OWS in the coding, 16-digit size",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n"
                   + "0000000000000003\r\nabc\r\nb\r\nhello world\r\n0\r\n\r\n",
               [post("abchello world", framing: .chunked)]),
    ParserCase("pipelined GET, POST and chunked POST",
               "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                   + "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                   + "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n",
               [get("/a"), post("abc", framing: .length(3), target: "/b"),
                post("de", framing: .chunked, target: "/c")]),
    ParserCase("leading empty lines are skipped", "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [get()]),
    ParserCase("eight empty lines between pipelined requests",
               "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" + String(repeating: "\r\n", count: 8)
                   + "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
               [get("/1"), get("/2")]),
    ParserCase("HTTP/1.0 closes by default, Host optional", "GET / HTTP/1.0\r\n\r\n",
               [Expected(method: "GET", target: "/", version: .http1_0, fieldCount: 0, keepAlive: false)]),
    ParserCase("HTTP/1.0 keep-alive token", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
               [Expected(method: "GET", target: "/", version: .http1_0, keepAlive: true)]),
    ParserCase("HTTP/1.0 keep-alive then close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
               [Expected(method: "GET", target: "/", version: .http1_0, keepAlive: false)]),
    ParserCase("HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
               [Expected(method: "GET", target: "/", keepAlive: false)]),
    ParserCase("close token in a list, any case, second field",
               "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nConnection: TE , CLOSE\r\n\r\n",
               [Expected(method: "GET", target: "/", keepAlive: false)]),
    ParserCase("HTTP/1.1 keep-alive token changes nothing",
               "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", [get()]),
    ParserCase("Expect: 100-continue",
               "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok",
               [Expected(method: "PUT", target: "/f", framing: .length(2), body: "ok", expectsContinue: true)]),
    ParserCase("other Expect values are not 100-continue", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n",
               [Expected(method: "GET", target: "/", headers: ["Expect": "200-ok"])]),
    ParserCase("Expect on HTTP/1.0 is ignored", "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
               [Expected(method: "GET", target: "/", version: .http1_0, keepAlive: false)]),
    ParserCase("OWS trimmed, inner whitespace kept, empty value",
               "GET / HTTP/1.1\r\nHost: x\r\nX-A: \t a  b\tc \t\r\nX-Empty:\r\nX-B:tight\r\n\r\n",
               [get("/", ["X-A": "a  b\tc", "X-Empty": "", "X-B": "tight"])]),
    ParserCase("obs-text in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-Name: café\r\n\r\n",
               [get("/", ["X-Name": "café"])]),
    ParserCase("repeated fields kept in order", "GET / HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n",
               [Expected(method: "GET", target: "/", headers: ["Accept": "a", "Accept": "b"], fieldCount: 3)]),
]

private let errorCases: [ParserCase] = [
    // Request line
    ParserCase("non-token method", "G‸(T / HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("tab after method", "GET‸\t/ HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("empty method", "‸ / HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("two spaces after method", "GET ‸ / HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("two spaces before version", "GET / ‸ HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("control character in target", "GET /a‸\u{01}b HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("DEL in target", "GET /a‸\u{7F} HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("non-ASCII in target", "GET /caf‸é HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("asterisk-form outside OPTIONS", "GET ‸* HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("authority-form", "CONNECT ‸example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("scheme without host", "GET ‸http:// HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("no version (HTTP/0.9 style)", "GET /‸\r\n\r\n", fails: 400),
    ParserCase("HTTP/2.0", "GET / ‸HTTP/2.0\r\nHost: x\r\n\r\n", fails: 505),
    ParserCase("HTTP/1.2", "GET / ‸HTTP/1.2\r\nHost: x\r\n\r\n", fails: 505),
    ParserCase("garbage version", "GET / ‸HTTP/1.x\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("lowercase protocol name", "GET / ‸http/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("two-digit major", "GET / ‸HTTP/11.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("space after version", "GET / ‸HTTP/1.1 \r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("nine empty lines before request", String(repeating: "\r\n", count: 8) + "‸\r\nGET / HTTP/1.1\r\n",
               fails: 400),
    // Line endings
    ParserCase("bare LF ending request line", "GET / HTTP/1.1‸\nHost: x\r\n\r\n", fails: 400),
    ParserCase("bare LF ending a field line", "GET / HTTP/1.1\r\nHost: x‸\n\r\n", fails: 400),
    ParserCase("bare LF ending the head", "GET / HTTP/1.1\r\nHost: x\r\n‸\n", fails: 400),
    ParserCase("bare LF as leading empty line", "‸\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("bare CR in request line", "GET /‸\r HTTP/1.1\r\nHost: x\r\n\r\n", fails: 400),
    ParserCase("bare CR inside a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a‸\rb\r\n\r\n", fails: 400),
    ParserCase("CR CR LF after a value", "GET / HTTP/1.1\r\nHost: x‸\r\r\n\r\n", fails: 400),
    ParserCase("bare CR in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX‸\rA: a\r\n\r\n", fails: 400),
    // Field lines
    ParserCase("obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n‸ b\r\n\r\n", fails: 400),
    ParserCase("tab-indented first field line", "GET / HTTP/1.1\r\n‸\tHost: x\r\n\r\n", fails: 400),
    ParserCase("space before colon", "GET / HTTP/1.1\r\nHost‸ : x\r\n\r\n", fails: 400),
    ParserCase("empty field name", "GET / HTTP/1.1\r\nHost: x\r\n‸: x\r\n\r\n", fails: 400),
    ParserCase("field line without colon", "GET / HTTP/1.1\r\nHost: x\r\nNoColon‸\r\n\r\n", fails: 400),
    ParserCase("non-token field name", "GET / HTTP/1.1\r\nHost: x\r\nX‸(A): y\r\n\r\n", fails: 400),
    ParserCase("NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a‸\u{0}b\r\n\r\n", fails: 400),
    ParserCase("control character in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a‸\u{1B}b\r\n\r\n", fails: 400),
    ParserCase("DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a‸\u{7F}\r\n\r\n", fails: 400),
    // Host
    ParserCase("missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n‸\r\n", fails: 400),
    ParserCase("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\n‸host: a\r\n\r\n", fails: 400),
    ParserCase("duplicate Host on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n‸Host: b\r\n\r\n", fails: 400),
    // Framing
    ParserCase("Content-Length then Transfer-Encoding",
               "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n‸Transfer-Encoding: chunked\r\n\r\n", fails: 400),
    ParserCase("Transfer-Encoding then Content-Length",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n‸Content-Length: 5\r\n\r\n", fails: 400),
    ParserCase("duplicate equal Content-Length",
               "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n‸Content-Length: 5\r\n\r\nhello", fails: 400),
    ParserCase("signed Content-Length +5", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ‸+5\r\n\r\nhello",
               fails: 400),
    ParserCase("signed Content-Length -5", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ‸-5\r\n\r\n", fails: 400),
    ParserCase("Content-Length with inner space", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1‸ 2\r\n\r\n",
               fails: 400),
    ParserCase("Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5‸, 5\r\n\r\nhello",
               fails: 400),
    ParserCase("empty Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ‸\r\n\r\n", fails: 400),
    ParserCase("hex Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0‸x5\r\n\r\n", fails: 400),
    ParserCase("Content-Length of 19 digits",
               "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 123456789012345678‸9\r\n\r\n", fails: 400),
    ParserCase("Transfer-Encoding not ending in chunked",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ‸chunked, gzip\r\n\r\n", fails: 400),
    ParserCase("Transfer-Encoding gzip only", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ‸gzip\r\n\r\n",
               fails: 400),
    ParserCase("empty Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ‸\r\n\r\n", fails: 400),
    ParserCase("Transfer-Encoding gzip, chunked",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ‸gzip, chunked\r\n\r\n", fails: 501),
    ParserCase("chunked applied twice",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ‸chunked, chunked\r\n\r\n", fails: 400),
    ParserCase("two Transfer-Encoding fields",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n‸Transfer-Encoding: chunked\r\n\r\n",
               fails: 400),
    ParserCase("Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\n‸Transfer-Encoding: chunked\r\n\r\n", fails: 400),
    // Chunked body
    ParserCase("chunk size of 17 hex digits",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000‸0\r\n", fails: 400),
    ParserCase("empty chunk size",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n‸\r\n", fails: 400),
    ParserCase("extension without size",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n‸;a=b\r\n", fails: 400),
    ParserCase("garbage after chunk size",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5‸x\r\nhello\r\n", fails: 400),
    ParserCase("whitespace after chunk size without extension",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5‸ \r\nhello\r\n", fails: 400),
    ParserCase("control character in chunk extension",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a‸\u{0}\r\nhello\r\n", fails: 400),
    ParserCase("bare LF after chunk size",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5‸\nhello\r\n", fails: 400),
    ParserCase("chunk data longer than its size",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello‸!\r\n0\r\n\r\n",
               fails: 400),
    ParserCase("chunk data followed by CR only",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r‸0\r\n\r\n", fails: 400),
    ParserCase("obs-fold in trailers",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n‸ b\r\n\r\n",
               fails: 400),
    ParserCase("bare LF ending trailers",
               "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n‸\n", fails: 400),
    // Pipelining: what came before the fault is still reported
    ParserCase("second pipelined request is bad",
               "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n‸\r\n", fails: 400, after: [get("/a")]),
]

// MARK: - Limits, generated

private func padded(_ prefix: String, toLength length: Int) -> String {
    prefix + String(repeating: "a", count: length - prefix.utf8.count)
}

private func requestLineCases() -> [ParserCase] {
    let limit = HTTPParserLimits().maxRequestLineBytes
    let atLimit = padded("GET /", toLength: limit - " HTTP/1.1".utf8.count)
    let overLimit = padded("GET /", toLength: limit + 1 - " HTTP/1.1".utf8.count)
    let unterminated = padded("GET /", toLength: limit + 50)
    return [
        ParserCase("request line at the limit", atLimit + " HTTP/1.1\r\nHost: x\r\n\r\n",
                   [get(String(atLimit.dropFirst(4)))]),
        ParserCase("request line one byte over the limit",
                   bytes: Array((overLimit + " HTTP/1.1\r\nHost: x\r\n\r\n").utf8), requests: [],
                   failure: (414, limit)),
        ParserCase("request line one byte over the limit, ended by a bare LF",
                   bytes: Array((overLimit + " HTTP/1.1\nHost: x\r\n\r\n").utf8), requests: [], failure: (414, limit)),
        ParserCase("overlong request line fails before its CRLF arrives", bytes: Array(unterminated.utf8),
                   requests: [], failure: (414, limit)),
        ParserCase("request line of limit bytes and CR, LF not yet sent", bytes: Array((atLimit + " HTTP/1.1\r").utf8),
                   requests: [], endsIdle: false),
        ParserCase("request line at limit after two leading CRLFs",
                   "\r\n\r\n" + atLimit + " HTTP/1.1\r\nHost: x\r\n\r\n", [get(String(atLimit.dropFirst(4)))]),
    ]
}

private func fieldLineCases() -> [ParserCase] {
    let limit = HTTPParserLimits().maxHeaderLineBytes
    let head = "GET / HTTP/1.1\r\nHost: x\r\n"
    let atLimit = padded("X-Long: ", toLength: limit)
    let overLimit = padded("X-Long: ", toLength: limit + 1)
    return [
        ParserCase("field line at the limit", head + atLimit + "\r\n\r\n",
                   [get("/", ["X-Long": String(atLimit.dropFirst(8))])]),
        ParserCase("field line one byte over the limit", bytes: Array((head + overLimit + "\r\n\r\n").utf8),
                   requests: [], failure: (431, head.utf8.count + limit)),
    ]
}

private func fieldCountCases() -> [ParserCase] {
    let head = "GET / HTTP/1.1\r\nHost: x\r\n"
    let fields = (1...100).map { "X-\($0): v\r\n" }
    let hundred = head + fields.prefix(99).joined()
    return [
        ParserCase("100 field lines", hundred + "\r\n", [Expected(method: "GET", target: "/", fieldCount: 100)]),
        ParserCase("101 field lines", bytes: Array((hundred + fields[99] + "\r\n").utf8), requests: [],
                   failure: (431, hundred.utf8.count)),
    ]
}

private func sectionCases() -> [ParserCase] {
    // Four lines of 8190 bytes plus CRLF fill the 32768-byte section exactly.
    let host = padded("Host: ", toLength: 8190) + "\r\n"
    let filler = (1...3).map { padded("X-Pad-\($0): ", toLength: 8190) + "\r\n" }.joined()
    let full = "GET / HTTP/1.1\r\n" + host + filler
    // The last filler line grows by one byte; dropLast() removes "\r\n", which is a single Character.
    let overByOne = "GET / HTTP/1.1\r\n" + host + filler.dropLast() + "a\r\n"
    return [
        ParserCase("header section at the limit", full + "\r\n", [Expected(method: "GET", target: "/", fieldCount: 4)]),
        ParserCase("header section one byte over the limit", bytes: Array((overByOne + "\r\n").utf8), requests: [],
                   failure: (431, overByOne.utf8.count - 3)),
        ParserCase("fifth line beyond a nearly full section", bytes: Array((full + "X: y\r\n\r\n").utf8),
                   requests: [], failure: (431, full.utf8.count)),
    ]
}

private func chunkLineCases() -> [ParserCase] {
    let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    let atLimit = padded("3;e=", toLength: HTTPParserLimits().maxChunkLineBytes)
    let overLimit = atLimit + "a"
    return [
        ParserCase("chunk line at the limit", head + atLimit + "\r\nabc\r\n0\r\n\r\n",
                   [post("abc", framing: .chunked)]),
        ParserCase("chunk line one byte over the limit", bytes: Array((head + overLimit + "\r\nabc\r\n").utf8),
                   requests: [], failure: (400, head.utf8.count + atLimit.utf8.count)),
    ]
}

private func trailerCountCases() -> [ParserCase] {
    let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    let trailers = (1...100).map { "T-\($0): v\r\n" }.joined()
    return [
        ParserCase("100 trailer lines", head + trailers + "\r\n", [post("", framing: .chunked)]),
        ParserCase("101 trailer lines", bytes: Array((head + trailers + "T: v\r\n\r\n").utf8), requests: [],
                   failure: (431, (head + trailers).utf8.count)),
    ]
}

private func byteCases() -> [ParserCase] {
    let head = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Raw: ".utf8)
    return [
        ParserCase("raw obs-text bytes 0x80-0xFF in a value", bytes: head + [0x80, 0xA0, 0xFF] + Array("\r\n\r\n".utf8),
                   requests: [Expected(method: "GET", target: "/", fieldCount: 2)]),
    ]
}

// MARK: - Running the parser

/// What the parser reported for one input, rendered as lines so splits can be compared and printed.
private struct Outcome {
    var heads: [HTTPRequestHead] = []
    var bodies: [[UInt8]] = []
    var ended: [Bool] = []
    var error: HTTPParseError?
    /// Broken promises of `parse`: not stopping at `.end`, or leaving bytes unconsumed otherwise.
    var contractViolations: [String] = []
    var idleAtEnd = false

    var trace: [String] {
        var lines: [String] = []
        for (index, head) in heads.enumerated() {
            let fields = head.headers.map { "\($0.name): \($0.value)" }.joined(separator: " | ")
            lines.append("head \(head.method) \(head.target) \(head.version) framing=\(head.framing)"
                + " keepAlive=\(head.keepAlive) expectsContinue=\(head.expectsContinue) [\(fields)]")
            lines.append("body \(bodies[index].map { String($0, radix: 16) }.joined(separator: " "))")
            if ended[index] { lines.append("end") }
        }
        if let error { lines.append("error \(error)") }
        return lines
    }
}


/// Feeds `input` in reads whose sizes `nextReadSize` chooses, calling `parse` again on what it left over.
private func feed(_ input: [UInt8], limits: HTTPParserLimits, nextReadSize: () -> Int) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = Outcome()
    var readStart = 0
    while readStart < input.count && outcome.error == nil {
        let readEnd = min(input.count, readStart + max(1, nextReadSize()))
        var cursor = readStart
        while cursor < readEnd && outcome.error == nil {
            let consumed = parseOnce(&parser, input[cursor..<readEnd], into: &outcome)
            cursor += consumed
            if consumed == 0 && outcome.error == nil {
                outcome.contractViolations.append("parse consumed nothing at \(cursor)")
                return outcome
            }
        }
        readStart = readEnd
    }
    outcome.idleAtEnd = parser.isIdle
    return outcome
}

/// One call to `parse`, recording events and checking that it stops exactly after `.end`.
private func parseOnce(_ parser: inout HTTPRequestParser, _ bytes: ArraySlice<UInt8>,
                       into outcome: inout Outcome) -> Int {
    var endedHere = false, eventAfterEnd = false
    do {
        let consumed = try bytes.withUnsafeBytes { buffer in
            try parser.parse(buffer) { event in
                if endedHere { eventAfterEnd = true }
                switch event {
                case .head(let head):
                    outcome.heads.append(head)
                    outcome.bodies.append([])
                    outcome.ended.append(false)
                case .body(let chunk): outcome.bodies[outcome.bodies.count - 1].append(contentsOf: chunk)
                case .end:
                    outcome.ended[outcome.ended.count - 1] = true
                    endedHere = true
                }
            }
        }
        if eventAfterEnd { outcome.contractViolations.append("events after .end in one call") }
        if !endedHere && consumed != bytes.count {
            outcome.contractViolations.append("consumed \(consumed) of \(bytes.count) without an .end")
        }
        return consumed
    } catch {
        outcome.error = error as? HTTPParseError
        return 0
    }
}

// MARK: - Tests

final class HTTPRequestParserTests: XCTestCase {
    private static let seeds: [UInt64] = [1, 2, 3, 7, 42, 2024, 0xDEAD_BEEF, 0x5EED_0F_5EED]

    func testValidRequests() {
        for spec in validCases { check(spec) }
    }

    func testMalformedRequests() {
        for spec in errorCases { check(spec) }
    }

    func testLimits() {
        let generated = requestLineCases() + fieldLineCases() + fieldCountCases() + sectionCases()
            + chunkLineCases() + trailerCountCases()
        for spec in generated { check(spec) }
    }

    func testRawBytes() {
        for spec in byteCases() { check(spec) }
    }

    func testSmallerLimitsApply() {
        let limits = HTTPParserLimits(maxRequestLineBytes: 16, maxHeaderLineBytes: 10, maxHeaderSectionBytes: 30,
                                      maxHeaderCount: 2, maxChunkLineBytes: 4)
        check(ParserCase("request line over 16", "GET /0123456789a‸b HTTP/1.1\r\n", fails: 414, limits: limits))
        check(ParserCase("request line of 16", "GET /01 HTTP/1.1\r\nHost: x\r\n\r\n", [get("/01")], limits: limits))
        check(ParserCase("field line over 10", "GET / HTTP/1.1\r\nHost: 0123‸4\r\n\r\n", fails: 431, limits: limits))
        check(ParserCase("third field", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n‸C: d\r\n\r\n", fails: 431,
                         limits: limits))
        check(ParserCase("section over 20", "GET / HTTP/1.1\r\nHost: 0123\r\nAbc: 0‸123\r\n\r\n", fails: 431,
                         limits: HTTPParserLimits(maxHeaderSectionBytes: 20)))
        check(ParserCase("chunk line over 4",
                         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;ab‸c\r\n", fails: 400,
                         limits: HTTPParserLimits(maxChunkLineBytes: 4)))
    }

    func testPipelinedParseStopsAfterEachEnd() throws {
        let first = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        let second = "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
        let third = "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        let partialFourth = "GET /4"
        let input = Array((first + second + third + partialFourth).utf8)
        var parser = HTTPRequestParser()
        var consumed: [Int] = []
        var targets: [String] = []
        try input.withUnsafeBytes { buffer in
            var cursor = 0
            while cursor < buffer.count {
                let used = try parser.parse(UnsafeRawBufferPointer(rebasing: buffer[cursor...])) { event in
                    if case .head(let head) = event { targets.append(head.target) }
                }
                consumed.append(used)
                cursor += used
            }
        }
        XCTAssertEqual(consumed, [first.utf8.count, second.utf8.count, third.utf8.count, partialFourth.utf8.count])
        XCTAssertEqual(targets, ["/1", "/2", "/3"])
        XCTAssertTrue(parser.isReadingHead, "the partial fourth request is held")
    }

    func testStateFlagsFollowTheMessage() throws {
        var parser = HTTPRequestParser()
        func flags() -> String {
            [parser.isIdle ? "idle" : "-", parser.isReadingHead ? "head" : "-", parser.isReadingBody ? "body" : "-"]
                .joined(separator: " ")
        }
        func send(_ text: String) throws {
            let bytes = Array(text.utf8)
            let used = try bytes.withUnsafeBytes { try parser.parse($0) { _ in } }
            XCTAssertEqual(used, bytes.count, "all of \(text.debugDescription) consumed")
        }
        var seen = [flags()]
        for piece in ["\r\n", "\r", "\n", "GE", "T / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n", "\r\n",
                      "ab", "c", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                      "1\r\nz\r\n", "0\r\nX-T: 1\r\n", "\r\n"] {
            try send(piece)
            seen.append(flags())
        }
        XCTAssertEqual(seen, ["idle - -", "idle - -", "- head -", "idle - -", "- head -", "- head -", "- - body",
                              "- - body", "idle - -", "- - body", "- - body", "- - body", "idle - -"])
    }

    func testKeepsThrowingAfterAnError() throws {
        var parser = HTTPRequestParser()
        let bad = Array("GET / HTTP/1.1\r\nHost : x\r\n\r\n".utf8)
        let good = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var first: HTTPParseError?
        for input in [bad, good, []] {
            XCTAssertThrowsError(try input.withUnsafeBytes { try parser.parse($0) { _ in } }) { error in
                let error = error as? HTTPParseError
                if first == nil { first = error }
                XCTAssertEqual(error, first)
            }
        }
        XCTAssertEqual(first?.status.code, 400)
        XCTAssertEqual(first?.offset, 20)
        XCTAssertFalse(parser.isIdle || parser.isReadingHead || parser.isReadingBody)
    }

    func testErrorOffsetsCountAcrossCalls() throws {
        var parser = HTTPRequestParser()
        let first = Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let used = try first.withUnsafeBytes { try parser.parse($0) { _ in } }
        let second = Array("GET /b HTTP/1.1\r\nHost: x\r\nX: \u{1}\r\n\r\n".utf8)
        XCTAssertThrowsError(try second.withUnsafeBytes { try parser.parse($0) { _ in } }) { error in
            XCTAssertEqual((error as? HTTPParseError)?.offset, used + 29)
        }
    }

    func testWholeLinesAndBodiesAreNotCopied() throws {
        var parser = HTTPRequestParser()
        let input = Array("POST /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody".utf8)
        try input.withUnsafeBytes { buffer in
            _ = try parser.parse(buffer) { event in
                guard case .body(let chunk) = event else { return }
                XCTAssertEqual(chunk.baseAddress, buffer.baseAddress.map { $0 + buffer.count - 4 })
            }
        }
        XCTAssertEqual(parser.heldLineCapacity, 0, "a head that arrives whole is parsed in place")
    }

    func testControlBytesAreFoundAtEveryPositionOfALongValue() {
        let head = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: "
        let value = Array("0123456789abcdef\t0123456789ABCDEF".utf8)
        for position in 0..<value.count where value[position] != HTTPByte.htab {
            for byte: UInt8 in [0x00, 0x01, 0x0A, 0x0D, 0x1F, 0x7F] {
                var bytes = value
                bytes[position] = byte
                // A leading or trailing HTAB would be trimmed as OWS, so the probe is framed by text.
                let input = Array(head.utf8) + bytes + Array("\r\n\r\n".utf8)
                // An LF there ends the line without CR; every other probe is a stray byte in the value.
                check(ParserCase("byte \(byte) at \(position) of a long value", bytes: input, requests: [],
                                 failure: (400, head.utf8.count + position)))
            }
        }
    }

    func testWordwiseFieldTextScanAgreesWithTheByteRule() {
        var random = SplitMix64(state: 99)
        for round in 0..<3000 {
            let length = random.next(in: 0...40)
            // Mostly text, with an occasional byte from anywhere so control bytes land in every lane.
            let bytes = (0..<length).map { _ in
                UInt8(random.next(in: 0...7) == 0 ? random.next(in: 0...255) : random.next(in: 0x20...0x7E))
            }
            let start = random.next(in: 0...length)
            let expected = (start..<length).first { !HTTPByte.isFieldText(bytes[$0]) }
            bytes.withUnsafeBytes { buffer in
                XCTAssertEqual(HTTPByte.firstNonFieldText(in: buffer, from: start, to: length), expected,
                               "seed 99, round \(round): \(bytes) from \(start)")
            }
        }
    }

    func testTokenTableMatchesRFC9110() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max {
            XCTAssertEqual(HTTPByte.isToken(byte), tchar.contains(byte), "byte \(byte)")
        }
    }

    func testDefaultLimits() {
        XCTAssertEqual(HTTPParserLimits(), HTTPParserLimits(maxRequestLineBytes: 8192, maxHeaderLineBytes: 8192,
                                                            maxHeaderSectionBytes: 32768, maxHeaderCount: 100,
                                                            maxChunkLineBytes: 4096))
        XCTAssertFalse(HTTPParserLimits(maxHeaderCount: 0).isValid)
    }

    // MARK: Helpers

    /// Runs a case whole, byte by byte and in seeded random splits, and compares with its expectations.
    private func check(_ spec: ParserCase, file: StaticString = #filePath, line: UInt = #line) {
        let whole = feed(spec.input, limits: spec.limits) { spec.input.count }
        verify(whole, against: spec, split: "whole", file: file, line: line)
        let oneByte = feed(spec.input, limits: spec.limits) { 1 }
        compare(oneByte, whole, spec, split: "one byte at a time", file: file, line: line)
        for seed in Self.seeds {
            var random = SplitMix64(state: seed)
            let largest = seed % 2 == 0 ? 7 : max(2, spec.input.count / 3)
            let split = feed(spec.input, limits: spec.limits) { random.next(in: 1...largest) }
            compare(split, whole, spec, split: "random reads of 1...\(largest), seed \(seed)", file: file, line: line)
        }
    }

    private func compare(_ outcome: Outcome, _ whole: Outcome, _ spec: ParserCase, split: String,
                         file: StaticString, line: UInt) {
        XCTAssertEqual(outcome.trace, whole.trace, "\(spec.name): \(split) differs from whole", file: file, line: line)
        XCTAssertEqual(outcome.contractViolations, [], "\(spec.name): \(split)", file: file, line: line)
    }

    private func verify(_ outcome: Outcome, against spec: ParserCase, split: String,
                        file: StaticString, line: UInt) {
        let label = "\(spec.name) (\(split))"
        XCTAssertEqual(outcome.contractViolations, [], label, file: file, line: line)
        // A fault inside a body comes after that request's head: one head may be left without its end.
        let completed = outcome.ended.filter { $0 }.count
        XCTAssertEqual(completed, spec.requests.count, "\(label): completed requests\n\(outcome.trace)",
                       file: file, line: line)
        XCTAssertLessThanOrEqual(outcome.heads.count - completed, spec.failure == nil ? 0 : 1, label,
                                 file: file, line: line)
        for (index, expected) in spec.requests.enumerated() where index < outcome.heads.count {
            verify(outcome.heads[index], body: outcome.bodies[index], against: expected, "\(label) #\(index)",
                   file: file, line: line)
        }
        if let failure = spec.failure {
            XCTAssertEqual(outcome.error?.status.code, failure.status, "\(label): status, got \(outcome.trace)",
                           file: file, line: line)
            XCTAssertEqual(outcome.error?.offset, failure.offset, "\(label): offset, got \(outcome.trace)",
                           file: file, line: line)
        } else {
            XCTAssertNil(outcome.error, label, file: file, line: line)
            XCTAssertEqual(outcome.idleAtEnd, spec.endsIdle, "\(label): idle at end", file: file, line: line)
        }
    }

    private func verify(_ head: HTTPRequestHead, body: [UInt8], against expected: Expected, _ label: String,
                        file: StaticString, line: UInt) {
        XCTAssertEqual(head.method.rawValue, expected.method, "\(label): method", file: file, line: line)
        XCTAssertEqual(head.target, expected.target, "\(label): target", file: file, line: line)
        XCTAssertEqual(head.version, expected.version, "\(label): version", file: file, line: line)
        XCTAssertEqual(head.framing, expected.framing, "\(label): framing", file: file, line: line)
        XCTAssertEqual(body, Array(expected.body.utf8), "\(label): body", file: file, line: line)
        XCTAssertEqual(head.keepAlive, expected.keepAlive, "\(label): keepAlive", file: file, line: line)
        XCTAssertEqual(head.expectsContinue, expected.expectsContinue, "\(label): expectsContinue",
                       file: file, line: line)
        if let count = expected.fieldCount {
            XCTAssertEqual(head.headers.count, count, "\(label): field count", file: file, line: line)
        }
        var wanted: [String: [String]] = [:]
        for (name, value) in expected.headers { wanted[name.lowercased(), default: []].append(value) }
        for (name, values) in wanted {
            XCTAssertEqual(head.headers.values(name), values, "\(label): \(name)", file: file, line: line)
        }
    }
}
