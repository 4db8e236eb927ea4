import ReplicaTestSupport
import XCTest
@testable import ReplicaCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Each case keeps a raw body beside the parts the parser must report. In failing cases `‸` marks the byte
// where the fault must be found (at the very end: the body ended too early); it is removed before feeding.
// Every case runs whole, one byte at a time, split in two at every position and in seeded random chunkings,
// and every chunking must give the trace of the whole body.

/// A part the parser should report, its body concatenated over all partData events.
private struct Part {
    var name: String?
    var filename: String?
    var contentType: String?
    var data: [UInt8]

    static func field(_ name: String, _ value: String) -> Part {
        Part(name: name, data: Array(value.utf8))
    }

    static func file(_ name: String, _ filename: String, _ type: String?, _ data: [UInt8]) -> Part {
        Part(name: name, filename: filename, contentType: type, data: data)
    }

    static func unnamed(_ data: String, type: String? = nil) -> Part {
        Part(contentType: type, data: Array(data.utf8))
    }
}

/// One specification: a boundary, raw bytes, and the parts or the failure they must give.
private struct MultipartCase {
    var name: String
    var boundary: String
    var body: [UInt8]
    var parts: [Part] = []
    var failure: MultipartError?
    var limits = MultipartLimits()

    /// A well-formed body that must give exactly `parts` and then `.end`.
    init(_ name: String, boundary: String = "XyZ", _ body: [UInt8], _ parts: [Part],
         limits: MultipartLimits = MultipartLimits()) {
        self.name = name
        self.boundary = boundary
        self.body = body
        self.parts = parts
        self.limits = limits
    }

    init(_ name: String, boundary: String = "XyZ", _ text: String, _ parts: [Part],
         limits: MultipartLimits = MultipartLimits()) {
        precondition(!text.contains("‸"), "\(name): a fault marker in a case that should succeed")
        self.init(name, boundary: boundary, Array(text.utf8), parts, limits: limits)
    }

    /// A body that must fail with `reason` at the byte after the `‸` marker.
    init(_ name: String, boundary: String = "XyZ", _ text: String, fails reason: String,
         limits: MultipartLimits = MultipartLimits()) {
        let pieces = text.components(separatedBy: "‸")
        precondition(pieces.count == 2, "\(name): a failing case needs exactly one ‸ marker")
        self.name = name
        self.boundary = boundary
        self.body = Array(pieces.joined().utf8)
        self.failure = MultipartError(reason: reason, offset: UInt64(pieces[0].utf8.count))
        self.limits = limits
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

// MARK: - The specification

private let curlBoundary = "------------------------c8a9d0f6e4b13a27"

/// A JPEG-like run with delimiter traps: CRLF, a lone CR, dashes, and curl's delimiter short of one byte.
private let jpegLike: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0x0D, 0x0A, 0x2D, 0x2D, 0x00, 0x0D, 0x0D, 0x0A, 0x2D]
    + bytes("\r\n--" + curlBoundary.dropLast()) + [0x0D, 0xFF, 0xD9]
private let webKitBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
private let requestsBoundary = "5c2b8e0f4a9d41c7b3e6f1a2d8c7e9b0"

private let validCases: [MultipartCase] = [
    MultipartCase("curl: a field and two files", boundary: curlBoundary,
                  bytes("--\(curlBoundary)\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nChapel survey\r\n"
                        + "--\(curlBoundary)\r\nContent-Disposition: form-data; name=\"images\"; "
                        + "filename=\"IMG_0001.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
                      + jpegLike
                      + bytes("\r\n--\(curlBoundary)\r\nContent-Disposition: form-data; name=\"images\"; "
                              + "filename=\"IMG_0002.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
                      + jpegLike.reversed()
                      + bytes("\r\n--\(curlBoundary)--\r\n"),
                  [.field("name", "Chapel survey"), .file("images", "IMG_0001.jpg", "image/jpeg", jpegLike),
                   .file("images", "IMG_0002.jpg", "image/jpeg", jpegLike.reversed())]),
    MultipartCase("browser: fields before and after files, an empty file input", boundary: webKitBoundary,
                  "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n"
                      + "North façade\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                      + "Content-Disposition: form-data; name=\"images\"; filename=\"%22a%22.png\"\r\n"
                      + "Content-Type: image/png\r\n\r\n\u{1}PNG\r\n\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                      + "Content-Disposition: form-data; name=\"extra\"; filename=\"\"\r\n"
                      + "Content-Type: application/octet-stream\r\n\r\n\r\n"
                      + "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                      + "Content-Disposition: form-data; name=\"quality\"\r\n\r\nhigh\r\n"
                      + "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n",
                  [.field("title", "North façade"), .file("images", "%22a%22.png", "image/png", bytes("\u{1}PNG\r\n")),
                   .file("extra", "", "application/octet-stream", []), .field("quality", "high")]),
    MultipartCase("Python requests: no Content-Type on a file", boundary: requestsBoundary,
                  "--\(requestsBoundary)\r\nContent-Disposition: form-data; name=\"images\"; filename=\"a.jpg\"\r\n"
                      + "\r\nabc\r\n--\(requestsBoundary)\r\nContent-Disposition: form-data; name=\"preset\"\r\n\r\n"
                      + "fast\r\n--\(requestsBoundary)--\r\n",
                  [.file("images", "a.jpg", nil, bytes("abc")), .field("preset", "fast")]),
    MultipartCase("empty file part and empty field",
                  "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"empty.jpg\"\r\n\r\n\r\n"
                      + "--XyZ\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--XyZ--",
                  [.file("f", "empty.jpg", nil, []), .field("e", "")]),
    MultipartCase("delimiter look-alikes are data",
                  "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t\"\r\n\r\n"
                      + "\r\n--XyQ|\r\n-|\r\n--|\r\n--Xy|\r|\r\r\n|--XyZ|\n--XyZ|\r\n\r\n--Xy\r"
                      + "\r\n--XyZ--\r\n",
                  [.file("f", "t", nil,
                         bytes("\r\n--XyQ|\r\n-|\r\n--|\r\n--Xy|\r|\r\r\n|--XyZ|\n--XyZ|\r\n\r\n--Xy\r"))]),
    MultipartCase("a part body that is one CRLF",
                  "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n\r\n--XyZ--", [.field("a", "\r\n")]),
    MultipartCase("preamble and epilogue are ignored",
                  "This is a preamble.\r\n--XyQ\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1"
                      + "\r\n--XyZ--\r\nepilogue\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2",
                  [.field("a", "1")]),
    MultipartCase("body opening with CRLF before the first delimiter",
                  "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n",
                  [.field("a", "1")]),
    MultipartCase("transport padding after delimiters",
                  "--XyZ \t \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\t\r\n"
                      + "Content-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--XyZ-- \r\n",
                  [.field("a", "1"), .field("b", "2")]),
    MultipartCase("no parts", "--XyZ--\r\n", []),
    MultipartCase("a part without headers", "--XyZ\r\n\r\nplain\r\n--XyZ--", [.unnamed("plain")]),
    MultipartCase("a part without Content-Disposition",
                  "--XyZ\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XyZ--", [.unnamed("plain", type: "text/plain")]),
    MultipartCase("a Content-Disposition that is not form-data",
                  "--XyZ\r\nContent-Disposition: attachment; name=\"a\"; filename=\"b.jpg\"\r\n\r\nx\r\n--XyZ--",
                  [.unnamed("x")]),
    MultipartCase("header names in any case, OWS trimmed, first of a repeat counts",
                  "--XyZ\r\nCONTENT-disposition:form-data; name=\"a\"; filename=\"x.tif\" \t\r\n"
                      + "content-type: \t image/tiff\r\nContent-Disposition: form-data; name=\"b\"\r\n"
                      + "Content-Type: image/png\r\n\r\nII*\r\n--XyZ--",
                  [.file("a", "x.tif", "image/tiff", bytes("II*"))]),
    MultipartCase("bare LF ends header lines and the delimiter line",
                  "--XyZ\nContent-Disposition: form-data; name=\"a\"\n\n1\r\n--XyZ \n"
                      + "Content-Disposition: form-data; name=\"b\"\r\n\n2\r\n--XyZ--\n",
                  [.field("a", "1"), .field("b", "2")]),
    MultipartCase("every RFC 2046 boundary character", boundary: "a'()+_,-./:=? z",
                  "--a'()+_,-./:=? z\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--a'()+_,-./:=? z--",
                  [.field("a", "1")]),
    MultipartCase("a 70-character boundary", boundary: String(repeating: "7", count: 70),
                  "--\(String(repeating: "7", count: 70))\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                      + "\r\n--\(String(repeating: "7", count: 69))8\r\n--\(String(repeating: "7", count: 70))--",
                  [.field("a", "\r\n--\(String(repeating: "7", count: 69))8")]),
    MultipartCase("a one-character boundary", boundary: "-",
                  "---\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--\r\n-\r\n-----",
                  [.field("a", "--\r\n-")]),
    MultipartCase("bytes that are not UTF-8 in a header become U+FFFD",
                  bytes("--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"")
                      + [0x66, 0xE9, 0x2E, 0x6A, 0x70, 0x67] + bytes("\"\r\n\r\n1\r\n--XyZ--"),
                  [.file("a", "f\u{FFFD}.jpg", nil, bytes("1"))]),
]

private let errorCases: [MultipartCase] = [
    // Part headers
    MultipartCase("header line without colon", "--XyZ\r\n‸Content-Disposition form-data\r\n\r\n",
                  fails: "part header line has no colon"),
    MultipartCase("obs-fold", "--XyZ\r\nContent-Disposition: form-data;\r\n‸ name=\"a\"\r\n\r\n",
                  fails: "obsolete line folding in part header"),
    MultipartCase("whitespace before colon", "--XyZ\r\nContent-Type‸ : a\r\n\r\n",
                  fails: "whitespace before colon in part header"),
    MultipartCase("non-token header name", "--XyZ\r\nContent‸(Type): a\r\n\r\n",
                  fails: "invalid character in part header name"),
    MultipartCase("empty header name", "--XyZ\r\n‸: a\r\n\r\n", fails: "empty part header name"),
    MultipartCase("NUL in a header value", "--XyZ\r\nX-A: a‸\u{0}b\r\n\r\n", fails: "NUL in part header"),
    MultipartCase("bare CR in a header value", "--XyZ\r\nX-A: a‸\rb\r\n\r\n",
                  fails: "CR not followed by LF in part header"),
    MultipartCase("unterminated quote in Content-Disposition",
                  "--XyZ\r\nContent-Disposition: form-data; name=\"a‸\r\n\r\n", fails: "malformed Content-Disposition"),
    MultipartCase("text after a quoted parameter", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"‸b\r\n\r\n",
                  fails: "malformed Content-Disposition"),
    MultipartCase("parameter without a value", "--XyZ\r\nContent-Disposition: form-data; name=‸\r\n\r\n",
                  fails: "malformed Content-Disposition"),
    MultipartCase("parameter without =", "--XyZ\r\nContent-Disposition: form-data; name‸\r\n\r\n",
                  fails: "malformed Content-Disposition"),
    MultipartCase("empty Content-Disposition", "--XyZ\r\nContent-Disposition: ‸\r\n\r\n",
                  fails: "malformed Content-Disposition"),
    // Delimiter lines
    MultipartCase("first boundary followed by text", "--XyZ‸x\r\n", fails: "boundary not followed by CRLF or --"),
    MultipartCase("a longer boundary inside a body", "--XyZ\r\n\r\nabc\r\n--XyZ‸abc\r\n--XyZ--",
                  fails: "boundary not followed by CRLF or --"),
    MultipartCase("one dash after a boundary", "--XyZ\r\n\r\nabc\r\n--XyZ-‸x",
                  fails: "boundary not followed by CRLF or --"),
    MultipartCase("text after padding", "--XyZ \t‸x\r\n", fails: "boundary not followed by CRLF or --"),
    MultipartCase("CR without LF after a boundary", "--XyZ\r‸x", fails: "CR not followed by LF after boundary"),
    MultipartCase("a false delimiter in the preamble", "preamble\r\n--XyZ‸Q\r\n--XyZ\r\n",
                  fails: "boundary not followed by CRLF or --"),
    // Bodies that end too early
    MultipartCase("empty body", "‸", fails: "body ended before the first boundary"),
    MultipartCase("preamble only", "no boundary here\r\n--XyQ\r\n‸", fails: "body ended before the first boundary"),
    MultipartCase("ends inside headers", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n‸",
                  fails: "body ended inside a part's headers"),
    MultipartCase("ends inside a header line", "--XyZ\r\nContent-Dispo‸", fails: "body ended inside a part's headers"),
    MultipartCase("ends inside a body", "--XyZ\r\n\r\ndata‸", fails: "body ended before the closing boundary"),
    MultipartCase("LF before a boundary is data", "--XyZ\r\n\r\ndata\n--XyZ--\n‸",
                  fails: "body ended before the closing boundary"),
    MultipartCase("ends inside a delimiter", "--XyZ\r\n\r\ndata\r\n--Xy‸",
                  fails: "body ended before the closing boundary"),
    MultipartCase("ends after a delimiter", "--XyZ\r\n\r\ndata\r\n--XyZ‸",
                  fails: "body ended before the closing boundary"),
    MultipartCase("ends after one dash", "--XyZ\r\n\r\ndata\r\n--XyZ-‸",
                  fails: "body ended before the closing boundary"),
    MultipartCase("ends after the CR of a delimiter line", "--XyZ\r\n\r\ndata\r\n--XyZ\r‸",
                  fails: "body ended before the closing boundary"),
    MultipartCase("ends in a new part's headers", "--XyZ\r\n\r\ndata\r\n--XyZ\r\n‸",
                  fails: "body ended inside a part's headers"),
]

// MARK: - Limits, generated

private let fieldHeaders = "Content-Disposition: form-data; name=\"a\"\r\n\r\n"

private func headerLimitCases() -> [MultipartCase] {
    let block = fieldHeaders.utf8.count
    var exact = MultipartLimits(), short = MultipartLimits()
    exact.maxPartHeaderBytes = block
    short.maxPartHeaderBytes = block - 1
    let body = "--XyZ\r\n" + fieldHeaders + "1\r\n--XyZ\r\n" + fieldHeaders + "2\r\n--XyZ--"
    // A first part without headers, so only the second block can exceed the limit. Note that "\r\n" is one
    // Character: dropLast() removes both bytes.
    let bareFirst = "--XyZ\r\n\r\n1\r\n--XyZ\r\n"
    let overDefault = "X-Pad: " + String(repeating: "p", count: 16 * 1024 - 9) + "\r\n"
    return [
        MultipartCase("header blocks at the limit", body, [.field("a", "1"), .field("a", "2")], limits: exact),
        MultipartCase("header block one byte over the limit", bareFirst + String(fieldHeaders.dropLast()) + "\r‸\n",
                      fails: "part headers longer than \(block - 1) bytes", limits: short),
        MultipartCase("default limit: a 16 KiB header line", "--XyZ\r\n" + overDefault + "‸\r\n1\r\n--XyZ--",
                      fails: "part headers longer than 16384 bytes"),
        MultipartCase("default limit: a line without LF", "--XyZ\r\n" + String(overDefault.dropLast()) + "\r\r‸\r",
                      fails: "part headers longer than 16384 bytes"),
    ]
}

private func partCountCases() -> [MultipartCase] {
    var two = MultipartLimits()
    two.maxParts = 2
    let parts = (1...3).map { "Content-Disposition: form-data; name=\"p\($0)\"\r\n\r\n\($0)\r\n" }
    return [
        MultipartCase("maxParts parts", "--XyZ\r\n" + parts[0] + "--XyZ\r\n" + parts[1] + "--XyZ--",
                      [.field("p1", "1"), .field("p2", "2")], limits: two),
        MultipartCase("one part more than maxParts",
                      "--XyZ\r\n" + parts[0] + "--XyZ\r\n" + parts[1] + "--XyZ\r\n‸" + parts[2] + "--XyZ--",
                      fails: "more than 2 parts", limits: two),
    ]
}

// MARK: - Running the parser

/// What the parser reported for one body, as lines, so chunkings can be compared and printed.
private struct Outcome {
    var trace: [String] = []
    var error: MultipartError?
    /// Broken promises: empty partData, data or partEnd outside a part, events after `.end`.
    var contractViolations: [String] = []
    /// The current part's body so far; nil between parts.
    var data: [UInt8]?
    var ended = false

    mutating func record(_ event: MultipartEvent) {
        if ended { contractViolations.append("event after .end") }
        switch event {
        case .partBegin(let head):
            if data != nil { contractViolations.append("partBegin inside a part") }
            trace.append("begin name=\(show(head.name)) filename=\(show(head.filename)) type=\(show(head.contentType))")
            data = []
        case .partData(let chunk):
            if chunk.isEmpty { contractViolations.append("empty partData") }
            if data == nil { contractViolations.append("partData outside a part") }
            data?.append(contentsOf: chunk)
        case .partEnd:
            if data == nil { contractViolations.append("partEnd outside a part") }
            flushData()
            trace.append("end part")
        case .end:
            if data != nil { contractViolations.append(".end inside a part") }
            trace.append("end")
            ended = true
        }
    }

    mutating func flushData() {
        guard let data else { return }
        trace.append("data " + render(data))
        self.data = nil
    }
}

private func show(_ value: String?) -> String { value.map { $0.debugDescription } ?? "nil" }

/// Printable ASCII as is, every other byte as \xHH, so a trace line shows exactly what was reported.
private func render(_ bytes: [UInt8]) -> String {
    bytes.map { $0 >= 0x20 && $0 < 0x7F && $0 != 0x5C ? String(UnicodeScalar($0)) : "\\x" + hex($0) }.joined()
}

private func hex(_ byte: UInt8) -> String { (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true) }

/// The trace a case's parts must give.
private func expectedTrace(_ parts: [Part]) -> [String] {
    parts.flatMap { part in
        ["begin name=\(show(part.name)) filename=\(show(part.filename)) type=\(show(part.contentType))",
         "data " + render(part.data), "end part"]
    } + ["end"]
}

/// Feeds `body` in the given chunks, each from a buffer of its own that is scribbled over after the call,
/// so a parser that kept a pointer into an earlier chunk would report garbage; then calls `finish()`.
private func feed(_ spec: MultipartCase, chunks: [Range<Int>]) -> Outcome {
    var parser = MultipartParser(boundary: spec.boundary, limits: spec.limits)
    var outcome = Outcome()
    do {
        for range in chunks {
            var chunk = Array(spec.body[range])
            try chunk.withUnsafeBytes { buffer in try parser.feed(buffer) { outcome.record($0) } }
            chunk.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0xEE) }
        }
        try parser.finish()
    } catch {
        outcome.error = error as? MultipartError
        if outcome.error == nil { outcome.contractViolations.append("threw \(error)") }
    }
    outcome.flushData()
    if let error = outcome.error { outcome.trace.append("error \(error)") }
    return outcome
}

/// Chunk ranges of random sizes in `1...largest`.
private func randomChunks(count: Int, largest: Int, random: inout SplitMix64) -> [Range<Int>] {
    var chunks: [Range<Int>] = [], start = 0
    while start < count {
        let end = min(count, start + random.next(in: 1...largest))
        chunks.append(start..<end)
        start = end
    }
    return chunks
}


// MARK: - Tests

final class MultipartParserTests: XCTestCase {
    private static let seeds: [UInt64] = [1, 2, 3, 7, 42, 2024, 0xDEAD_BEEF, 0x5EED_0F_5EED]

    func testWellFormedBodies() {
        for spec in validCases { check(spec) }
    }

    func testMalformedBodies() {
        for spec in errorCases { check(spec) }
    }

    func testLimits() {
        for spec in headerLimitCases() + partCountCases() { check(spec) }
    }

    func testContentDisposition() throws {
        let table: [(disposition: String, name: String?, filename: String?)] = [
            ("form-data; name=\"images\"; filename=\"a b.jpg\"", "images", "a b.jpg"),
            ("form-data; name=images; filename=a.jpg", "images", "a.jpg"),
            ("form-data;name=\"a\";filename=\"b\"", "a", "b"),
            ("form-data ; name = \"a\" ;\tfilename= \"b\" ", "a", "b"),
            ("Form-Data; NAME=\"a\"; FileName=\"b\"", "a", "b"),
            ("form-data; filename=\"b\"; name=\"a\"", "a", "b"),
            ("form-data; name=\"a\\\"q\"; filename=\"c\\\\d\"", "a\"q", "c\\d"),
            ("form-data; name=\"a;b\"", "a;b", nil),
            ("form-data; name=\"a\"; filename=\"%22x%22 %E2%82%AC.jpg\"", "a", "%22x%22 %E2%82%AC.jpg"),
            ("form-data; name=\"a\"; filename*=UTF-8''%E2%82%AC.jpg", "a", "€.jpg"),
            ("form-data; name=\"a\"; filename*=utf-8'en'a%20b.jpg", "a", "a b.jpg"),
            ("form-data; name=\"a\"; filename*=UTF-8''%E2%82%AC.jpg; filename=\"e.jpg\"", "a", "€.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; FILENAME*=UTF-8''%E2%82%AC.jpg", "a", "€.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; filename*=UTF-8''%FF.jpg", "a", "e.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; filename*=UTF-8''%E2%8", "a", "e.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; filename*=UTF-8''%G0.jpg", "a", "e.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; filename*=\"UTF-8''a b.jpg\"", "a", "e.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; filename*=ISO-8859-1''%E9.jpg", "a", "e.jpg"),
            ("form-data; name=\"a\"; filename=\"e.jpg\"; filename*=%E2%82%AC.jpg", "a", "e.jpg"),
            ("form-data; name=\"a\"; filename*=UTF-8''", "a", ""),
            ("form-data; name=\"\"", "", nil),
            ("form-data; name=\"a\";", "a", nil),
            ("form-data;; name=\"a\" ;;", "a", nil),
            ("form-data; name=\"a\"; name=\"b\"", "a", nil),
            ("form-data; name=\"café\"; filename=\"été.heic\"", "café", "été.heic"),
            ("form-data", nil, nil),
            ("inline; name=\"a\"", nil, nil),
        ]
        for row in table {
            let head = try singlePartHead("Content-Disposition: \(row.disposition)\r\n")
            XCTAssertEqual(head?.name, row.name, row.disposition)
            XCTAssertEqual(head?.filename, row.filename, row.disposition)
        }
    }

    func testHeadersAreKeptInOrder() throws {
        let head = try singlePartHead("content-disposition: form-data; name=\"a\"\r\nX-Extra:  one \r\n"
                                          + "Content-Type: image/jpeg; q=1\r\nX-Extra: two\r\nX-Empty:\r\n")
        let expected = MultipartPartHead(name: "a", contentType: "image/jpeg; q=1",
                                         headers: [("content-disposition", "form-data; name=\"a\""),
                                                   ("X-Extra", "one"), ("Content-Type", "image/jpeg; q=1"),
                                                   ("X-Extra", "two"), ("X-Empty", "")])
        XCTAssertEqual(head, expected)
        var reordered = expected
        reordered.headers.swapAt(1, 3)
        XCTAssertNotEqual(head, reordered, "header values take part in equality")
    }

    func testBoundaryFromContentType() {
        let seventy = String(repeating: "b", count: 70)
        let table: [(contentType: String, boundary: String?)] = [
            ("multipart/form-data; boundary=abc", "abc"),
            ("multipart/form-data; boundary=\"a b:c\"", "a b:c"),
            ("multipart/form-data; boundary=\"\(webKitBoundary)\"", webKitBoundary),
            ("Multipart/Form-Data; BOUNDARY=abc", "abc"),
            ("multipart/form-data ; boundary = abc ", "abc"),
            ("  multipart/form-data;boundary=abc;charset=utf-8", "abc"),
            ("multipart/form-data; charset=utf-8; Boundary=\"abc\"", "abc"),
            ("multipart/form-data; boundary=\(seventy)", seventy),
            ("multipart/form-data; boundary=\"\(seventy)\"", seventy),
            ("multipart/form-data; boundary=\(seventy)c", nil),
            ("multipart/form-data", nil),
            ("multipart/form-data;", nil),
            ("multipart/form-data; charset=utf-8", nil),
            ("multipart/form-data; boundary=", nil),
            ("multipart/form-data; boundary=\"\"", nil),
            ("multipart/form-data; boundary=\"abc", nil),
            ("multipart/form-data; boundary=\"abc \"", nil),
            ("multipart/form-data; boundary=abé", nil),
            ("multipart/form-data; boundary=\"a\\\"b\"", nil),
            ("multipart/form-data; boundary=a; boundary=b", nil),
            ("multipart/form-data; boundary abc", nil),
            ("multipart/form-databoundary=abc", nil),
            ("multipart/mixed; boundary=abc", nil),
            ("application/json", nil),
            ("application/json; boundary=abc", nil),
            ("", nil),
        ]
        for row in table {
            XCTAssertEqual(MultipartParser.boundary(fromContentType: row.contentType), row.boundary, row.contentType)
        }
    }

    func testBoundaryValidity() {
        let table: [(boundary: String, valid: Bool)] = [
            ("a", true), ("a'()+_,-./:=? z", true), (String(repeating: "-", count: 70), true),
            ("", false), (String(repeating: "-", count: 71), false), ("abc ", false), ("a\rb", false),
            ("a\"b", false), ("a;b", false), ("é", false),
        ]
        for row in table {
            XCTAssertEqual(MultipartParser.isValidBoundary(row.boundary), row.valid, row.boundary.debugDescription)
        }
    }

    func testLimitsValidate() {
        XCTAssertNoThrow(try MultipartLimits().validate())
        XCTAssertEqual(MultipartLimits().maxPartHeaderBytes, 16_384)
        XCTAssertEqual(MultipartLimits().maxParts, 100_000)
        var noHeaders = MultipartLimits()
        noHeaders.maxPartHeaderBytes = 0
        XCTAssertThrowsError(try noHeaders.validate()) { XCTAssertTrue($0 is OptionsError) }
        var noParts = MultipartLimits()
        noParts.maxParts = -1
        XCTAssertThrowsError(try noParts.validate()) { XCTAssertTrue($0 is OptionsError) }
    }

    func testCompletionAndEpilogue() throws {
        var parser = MultipartParser(boundary: "XyZ")
        var events = 0
        let head = bytes("--XyZ\r\n\r\n1\r\n--XyZ-")
        try head.withUnsafeBytes { try parser.feed($0) { _ in events += 1 } }
        XCTAssertFalse(parser.isComplete, "one dash does not close the body")
        let tail = bytes("-\r\n--XyZ\r\n\r\nignored")
        try tail.withUnsafeBytes { try parser.feed($0) { _ in events += 1 } }
        XCTAssertTrue(parser.isComplete)
        XCTAssertEqual(events, 4, "partBegin, partData, partEnd, end")
        try tail.withUnsafeBytes { try parser.feed($0) { _ in events += 1 } }
        XCTAssertEqual(events, 4, "epilogue bytes report nothing")
        XCTAssertNoThrow(try parser.finish())
    }

    func testKeepsThrowingAfterAnError() throws {
        var parser = MultipartParser(boundary: "XyZ")
        let bad = bytes("--XyZ\r\nNoColon\r\n\r\n")
        let good = bytes("--XyZ--")
        let expected = MultipartError(reason: "part header line has no colon", offset: 7)
        for input in [bad, good, []] {
            XCTAssertThrowsError(try input.withUnsafeBytes { try parser.feed($0) { _ in } }) { error in
                XCTAssertEqual(error as? MultipartError, expected)
            }
        }
        XCTAssertThrowsError(try parser.finish()) { XCTAssertEqual($0 as? MultipartError, expected) }
        XCTAssertEqual(expected.description, "part header line has no colon (at byte 7)")
    }

    func testHandlerErrorsAreRethrownAndStopTheParser() throws {
        struct DiskFull: Error {}
        var parser = MultipartParser(boundary: "XyZ")
        let body = bytes("--XyZ\r\n\r\nsome data\r\n--XyZ--")
        XCTAssertThrowsError(try body.withUnsafeBytes { buffer in
            try parser.feed(buffer) { event in if case .partData = event { throw DiskFull() } }
        }) { XCTAssertTrue($0 is DiskFull, "the handler's own error comes out") }
        XCTAssertThrowsError(try body.withUnsafeBytes { try parser.feed($0) { _ in } }) { error in
            XCTAssertEqual((error as? MultipartError)?.reason, "parsing stopped by the upload handler")
        }
        XCTAssertFalse(parser.isComplete)
    }

    func testLargeBodyStreamsInPlace() throws {
        let boundary = "----WebKitFormBoundaryQ3v8cLx0pT9mZr2A"
        let chunkSize = 65_536
        let prefix = bytes("--\(boundary)\r\nContent-Disposition: form-data; name=\"images\"; filename=\"big.raw\"\r\n"
                           + "\r\n")
        var payload = randomBytes(count: 10_000_000, seed: 0x10_0000)
        // Traps at fixed places: a delimiter one byte short across a chunk boundary, a CR ending a chunk.
        let trap = bytes("\r\n--" + boundary.dropLast())
        let trapStart = 3 * chunkSize - 10 - prefix.count
        payload.replaceSubrange(trapStart..<(trapStart + trap.count), with: trap)
        payload[5 * chunkSize - 1 - prefix.count] = 0x0D
        let body = prefix + payload + bytes("\r\n--\(boundary)--\r\n")

        var parser = MultipartParser(boundary: boundary)
        var received: [UInt8] = []
        received.reserveCapacity(payload.count)
        var inPlace = 0, copied = 0, chunks = 0
        for start in stride(from: 0, to: body.count, by: chunkSize) {
            try body[start..<min(body.count, start + chunkSize)].withUnsafeBytes { buffer in
                try parser.feed(buffer) { event in
                    guard case .partData(let data) = event else { return }
                    received.append(contentsOf: data)
                    if lies(data, within: buffer) {
                        inPlace += 1
                    } else {
                        copied += 1
                        XCTAssertLessThan(data.count, boundary.utf8.count + 4, "only a delimiter start is held back")
                    }
                }
            }
            chunks += 1
        }
        try parser.finish()
        XCTAssertTrue(sameBytes(received, payload), "the part's bytes arrive unchanged")
        XCTAssertLessThanOrEqual(inPlace, chunks, "at most one in-place slice per chunk of a single part")
        XCTAssertGreaterThanOrEqual(copied, 2, "both traps were held back and then released as data")
        XCTAssertLessThanOrEqual(copied, chunks - 1, "held-back bytes are released at most once per chunk boundary")
    }

    // MARK: Helpers

    private func randomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix64(state: seed)
        var result = [UInt8](repeating: 0, count: count)
        result.withUnsafeMutableBytes { raw in
            for word in 0..<(raw.count / 8) {
                raw.storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self)
            }
        }
        return result
    }

    private func lies(_ inner: UnsafeRawBufferPointer, within outer: UnsafeRawBufferPointer) -> Bool {
        guard let innerBase = inner.baseAddress, let outerBase = outer.baseAddress else { return false }
        return innerBase >= outerBase && innerBase + inner.count <= outerBase + outer.count
    }

    private func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in
                guard let xBase = x.baseAddress, let yBase = y.baseAddress else { return x.isEmpty }
                return memcmp(xBase, yBase, x.count) == 0
            }
        }
    }

    /// The head of a single part with the given header lines, parsed from a whole body.
    private func singlePartHead(_ headerLines: String) throws -> MultipartPartHead? {
        var parser = MultipartParser(boundary: "XyZ")
        var head: MultipartPartHead?
        let body = bytes("--XyZ\r\n" + headerLines + "\r\nx\r\n--XyZ--")
        try body.withUnsafeBytes { buffer in
            try parser.feed(buffer) { event in if case .partBegin(let begun) = event { head = begun } }
        }
        try parser.finish()
        return head
    }

    /// Runs a case whole, byte by byte, at every two-way split and in seeded random chunkings.
    private func check(_ spec: MultipartCase, file: StaticString = #filePath, line: UInt = #line) {
        let count = spec.body.count
        let whole = feed(spec, chunks: [0..<count])
        verify(whole, against: spec, file: file, line: line)
        compare(feed(spec, chunks: (0..<count).map { $0..<($0 + 1) }), whole, spec, "one byte at a time", file, line)
        for split in 1..<max(1, count) {
            compare(feed(spec, chunks: [0..<split, split..<count]), whole, spec, "split at \(split)", file, line)
        }
        for seed in Self.seeds {
            var random = SplitMix64(state: seed)
            let largest = seed % 2 == 0 ? 7 : max(2, count / 3)
            let chunks = randomChunks(count: count, largest: largest, random: &random)
            compare(feed(spec, chunks: chunks), whole, spec, "random chunks of 1...\(largest), seed \(seed)",
                    file, line)
        }
    }

    private func compare(_ outcome: Outcome, _ whole: Outcome, _ spec: MultipartCase, _ chunking: String,
                         _ file: StaticString, _ line: UInt) {
        XCTAssertEqual(outcome.trace, whole.trace, "\(spec.name): \(chunking) differs from whole",
                       file: file, line: line)
        XCTAssertEqual(outcome.contractViolations, [], "\(spec.name): \(chunking)", file: file, line: line)
    }

    private func verify(_ outcome: Outcome, against spec: MultipartCase, file: StaticString, line: UInt) {
        XCTAssertEqual(outcome.contractViolations, [], spec.name, file: file, line: line)
        guard let failure = spec.failure else {
            XCTAssertEqual(outcome.trace, expectedTrace(spec.parts), spec.name, file: file, line: line)
            return
        }
        XCTAssertEqual(outcome.error, failure, "\(spec.name), trace:\n\(outcome.trace.joined(separator: "\n"))",
                       file: file, line: line)
    }
}
