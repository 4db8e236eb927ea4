import FuzzSupport
import ReplicaCore

// What this target reaches: the Content-Type parameter grammar that yields the boundary, then the body parser:
// preamble, delimiters and their padding, part header blocks (Content-Disposition names and file names,
// Content-Type), part bodies with near-miss delimiters, the close delimiter and the epilogue, the limits, fed
// once whole and once in the pieces the first byte chooses.
//
// The input's first line (after the selector byte) is the request's Content-Type value; the rest is the body.

/// One parser event with its bytes copied out, so two runs over the same body can be compared.
enum Recorded: Equatable {
    case begin(MultipartPartHead)
    case data([UInt8])
    case partEnd
    case end
}

/// What a parser made of a body: its events (consecutive data joined) and, if it refused the body, why.
struct Outcome: Equatable {
    var events: [Recorded] = []
    var failure: MultipartError?
    var complete = false

    mutating func record(_ event: MultipartEvent) {
        switch event {
        case .partBegin(let head): events.append(.begin(head))
        case .partData(let bytes):
            if case .data(let earlier) = events.last {
                events[events.count - 1] = .data(earlier + Array(bytes))
            } else {
                events.append(.data(Array(bytes)))
            }
        case .partEnd: events.append(.partEnd)
        case .end: events.append(.end)
        }
    }
}

func parse(_ pieces: [UnsafeRawBufferPointer], boundary: String, limits: MultipartLimits) -> Outcome {
    var parser = MultipartParser(boundary: boundary, limits: limits)
    var outcome = Outcome()
    do {
        for piece in pieces { try parser.feed(piece) { outcome.record($0) } }
        try parser.finish()
    } catch let error as MultipartError {
        outcome.failure = error
        let again = Result { () throws(MultipartError) in try parser.finish() }
        guard case .failure(let repeated) = again, repeated == error else {
            preconditionFailure("a failed parser finished or changed its error")
        }
    } catch {
        preconditionFailure("the parser threw \(error), which is not a MultipartError")
    }
    outcome.complete = parser.isComplete
    return outcome
}

/// Parts nest properly: each begin is followed by its data and one partEnd before the next begin or the end, and
/// nothing follows the end.
func checkShape(_ outcome: Outcome, bodyLength: Int, limits: MultipartLimits) {
    var inPart = false, ended = false, parts = 0, data = 0
    for event in outcome.events {
        precondition(!ended, "an event after the end")
        switch event {
        case .begin:
            precondition(!inPart, "a part began inside another")
            inPart = true
            parts += 1
        case .data(let bytes):
            precondition(inPart, "data outside a part")
            data += bytes.count
        case .partEnd:
            precondition(inPart, "a part ended that had not begun")
            inPart = false
        case .end:
            precondition(!inPart, "the body ended inside a part")
            ended = true
        }
    }
    precondition(parts <= limits.maxParts, "\(parts) parts, over the limit of \(limits.maxParts)")
    precondition(data <= bodyLength, "\(data) bytes of part data from a body of \(bodyLength)")
    precondition(outcome.failure != nil || (ended && outcome.complete), "a body accepted without its close delimiter")
    if let failure = outcome.failure {
        precondition(!failure.reason.isEmpty && failure.offset <= UInt64(bodyLength), "a bad error: \(failure)")
    }
}

/// libFuzzer's per-input hook. Bit 7 of the selector picks small limits, so the limit checks are reached often.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let input = SplitInput(data, size) else { return 0 }
    let newline = input.stream.firstIndex(of: UInt8(ascii: "\n")) ?? input.stream.count
    let contentType = String(decoding: input.stream[..<newline], as: UTF8.self)
    guard let boundary = MultipartParser.boundary(fromContentType: contentType) else { return 0 }
    precondition(MultipartParser.isValidBoundary(boundary), "an invalid boundary \(boundary.debugDescription)")
    var limits = MultipartLimits()
    if input.selector & 0x80 != 0 {
        limits.maxPartHeaderBytes = 64
        limits.maxParts = 3
    }
    let body = UnsafeRawBufferPointer(rebasing: input.stream[min(input.stream.count, newline + 1)...])
    // The same body cut again, on the selector's cutting of the stream, shifted to where the body starts.
    let bodyStart = body.baseAddress.map { $0 - (input.stream.baseAddress ?? $0) } ?? 0
    var pieces: [UnsafeRawBufferPointer] = []
    for piece in input.pieces {
        let start = piece.baseAddress.map { $0 - input.stream.baseAddress! } ?? 0
        let lower = max(start, bodyStart), upper = start + piece.count
        if lower < upper { pieces.append(UnsafeRawBufferPointer(rebasing: input.stream[lower..<upper])) }
    }
    let whole = parse([body], boundary: boundary, limits: limits)
    let cut = parse(pieces, boundary: boundary, limits: limits)
    precondition(whole == cut, "the body parsed whole and in \(pieces.count) pieces disagree:\n\(whole)\n\(cut)")
    checkShape(whole, bodyLength: body.count, limits: limits)
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_multipart_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
