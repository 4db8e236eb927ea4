import FuzzSupport
import ReplicaCore

// What this target reaches: the request parser from the request line through the header fields, the framing
// decision (Content-Length, Transfer-Encoding, their conflicts), chunk sizes, extensions and trailers, and
// pipelined requests, fed once whole and once in the pieces the first byte chooses.

/// One parser event with its bytes copied out, so two runs over the same stream can be compared.
enum Recorded: Equatable {
    case head(method: String, target: String, version: String, headers: [String], framing: HTTPBodyFraming,
              expectsContinue: Bool, keepAlive: Bool)
    case body([UInt8])
    case end
}

/// What a parser made of a stream: its events (consecutive body bytes joined) and the error it stopped on.
struct Outcome: Equatable {
    var events: [Recorded] = []
    var failure: HTTPParseError?

    mutating func record(_ event: HTTPParserEvent) {
        switch event {
        case .head(let head):
            events.append(.head(method: head.method.rawValue, target: head.target, version: head.version.description,
                                headers: head.headers.map { "\($0.name): \($0.value)" }, framing: head.framing,
                                expectsContinue: head.expectsContinue, keepAlive: head.keepAlive))
        case .body(let bytes):
            if case .body(let earlier) = events.last {
                events[events.count - 1] = .body(earlier + Array(bytes))
            } else {
                events.append(.body(Array(bytes)))
            }
        case .end:
            events.append(.end)
        }
    }
}

/// Feeds `pieces` in order as a connection would: what a call leaves unconsumed (it stops after each request's
/// end) is offered again with the rest of the stream.
func parse(_ pieces: [UnsafeRawBufferPointer], limits: HTTPParserLimits) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = Outcome()
    var pending: [UInt8] = []
    var fed = 0
    for piece in pieces {
        pending += piece
        fed += piece.count
        while !pending.isEmpty {
            switch feed(&parser, pending, into: &outcome) {
            case .success(let consumed):
                precondition((1...pending.count).contains(consumed),
                             "consumed \(consumed) of \(pending.count) bytes")
                pending.removeFirst(consumed)
            case .failure(let error):
                checkFailure(error, parser: &parser, streamLength: fed)
                outcome.failure = error
                return outcome
            }
        }
    }
    return outcome
}

/// One call of the parser over `bytes`, its events recorded.
func feed(_ parser: inout HTTPRequestParser, _ bytes: [UInt8],
          into outcome: inout Outcome) -> Result<Int, HTTPParseError> {
    bytes.withUnsafeBytes { buffer in
        Result { () throws(HTTPParseError) -> Int in try parser.parse(buffer) { outcome.record($0) } }
    }
}

/// An error names a status the server can send and a place inside what was fed, and the parser sticks to it.
func checkFailure(_ error: HTTPParseError, parser: inout HTTPRequestParser, streamLength: Int) {
    precondition([400, 414, 431, 501, 505].contains(error.status.code), "status \(error.status.code) for \(error)")
    precondition(!error.reason.isEmpty, "an error without a reason")
    precondition((0...streamLength).contains(error.offset), "offset \(error.offset) outside \(streamLength) bytes")
    var ignored = Outcome()
    guard case .failure(let repeated) = feed(&parser, Array("GET / HTTP/1.1\r\n\r\n".utf8), into: &ignored),
          repeated == error else {
        preconditionFailure("a failed parser accepted more input or changed its error")
    }
}

/// libFuzzer's per-input hook. Bit 7 of the selector picks small limits, so the limit checks are reached often.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let input = SplitInput(data, size) else { return 0 }
    let limits = input.selector & 0x80 == 0 ? HTTPParserLimits()
        : HTTPParserLimits(maxRequestLineBytes: 64, maxHeaderLineBytes: 48, maxHeaderSectionBytes: 160,
                           maxHeaderCount: 4, maxChunkLineBytes: 16)
    let whole = parse([input.stream], limits: limits)
    let pieces = parse(input.pieces, limits: limits)
    precondition(whole == pieces, "the stream parsed whole and in \(input.pieces.count) pieces disagree:\n"
                 + "\(whole)\n\(pieces)")
    for case .head(_, _, _, let headers, let framing, _, _) in whole.events {
        precondition(headers.count <= limits.maxHeaderCount, "\(headers.count) fields past the limit")
        if case .chunked = framing {
            precondition(!headers.contains { $0.lowercased().hasPrefix("content-length:") },
                         "chunked framing with a Content-Length kept")
        }
    }
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_http_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
