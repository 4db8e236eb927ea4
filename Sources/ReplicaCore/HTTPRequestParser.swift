#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An incremental, strict HTTP/1.1 request parser that does no I/O and keeps no reference to the caller's bytes.
public struct HTTPRequestParser: Sendable {
    private enum State: Sendable {
        case requestLine
        case fieldLine
        case lengthBody(remaining: UInt64)
        case chunkSizeLine
        case chunkData(remaining: UInt64)
        case chunkDataCR
        case chunkDataLF
        case trailerLine
        case failed
    }

    private let limits: HTTPParserLimits
    private var state = State.requestLine
    private var failure: HTTPParseError?
    /// Start of a line that arrived split across reads; stays empty (and unallocated) while lines arrive whole.
    private var partialLine: [UInt8] = []
    private var partialLineStart = 0
    /// Stream offset of the first byte of the buffer now being parsed.
    private var streamBase = 0
    private var emptyLinesBeforeRequest = 0
    private var message = MessageInProgress()
    private var messageEnded = false

    /// Creates a parser for one connection; the limits must all be at least one.
    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        precondition(limits.isValid, "HTTPParserLimits must all be at least 1: \(limits)")
        self.limits = limits
    }

    /// True between messages (nothing of a next request received yet) — used for idle/keep-alive timing.
    public var isIdle: Bool {
        if case .requestLine = state { return partialLine.isEmpty }
        return false
    }

    /// True once any byte of the current request head has been seen and the head is not complete.
    public var isReadingHead: Bool {
        switch state {
        case .requestLine: return !partialLine.isEmpty
        case .fieldLine: return true
        default: return false
        }
    }

    /// True while a body is being received (chunk framing and trailers included).
    public var isReadingBody: Bool {
        switch state {
        case .lengthBody, .chunkSizeLine, .chunkData, .chunkDataCR, .chunkDataLF, .trailerLine: return true
        case .requestLine, .fieldLine, .failed: return false
        }
    }

    /// How much memory the parser holds for split lines; lets tests see that whole lines are parsed in place.
    var heldLineCapacity: Int { partialLine.capacity }

    /// Consumes bytes from `buffer`, reporting events, and stops right after a message's `.end`
    /// so the caller can pause a pipelined connection; returns how many bytes were consumed.
    /// The caller calls again with the unconsumed remainder (possibly later). Bytes not yet forming a
    /// complete token are buffered internally (bounded by the limits). Once it has thrown, it keeps throwing.
    public mutating func parse(_ buffer: UnsafeRawBufferPointer,
                               _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) -> Int {
        if let failure { throw failure }
        var cursor = 0
        messageEnded = false
        do throws(HTTPParseError) {
            while cursor < buffer.count && !messageEnded {
                cursor = try step(buffer, from: cursor, onEvent)
            }
        } catch {
            failure = error
            state = .failed
            partialLine = []
            throw error
        }
        streamBase += cursor
        return cursor
    }

    // MARK: - States

    /// Advances through one state; returns where parsing resumes in `buffer`.
    private mutating func step(_ buffer: UnsafeRawBufferPointer, from cursor: Int,
                               _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) -> Int {
        switch state {
        case .requestLine, .fieldLine, .chunkSizeLine, .trailerLine:
            return try stepLine(buffer, from: cursor, onEvent)
        case .lengthBody(let remaining):
            let taken = emitBody(buffer, from: cursor, upTo: remaining, onEvent)
            let left = remaining - UInt64(taken)
            if left == 0 { finishMessage(onEvent) } else { state = .lengthBody(remaining: left) }
            return cursor + taken
        case .chunkData(let remaining):
            let taken = emitBody(buffer, from: cursor, upTo: remaining, onEvent)
            let left = remaining - UInt64(taken)
            state = left == 0 ? .chunkDataCR : .chunkData(remaining: left)
            return cursor + taken
        case .chunkDataCR:
            try expectByte(HTTPByte.cr, in: buffer, at: cursor)
            state = .chunkDataLF
            return cursor + 1
        case .chunkDataLF:
            try expectByte(HTTPByte.lf, in: buffer, at: cursor)
            state = .chunkSizeLine
            return cursor + 1
        case .failed:
            preconditionFailure("a failed parser never steps; parse rethrows its error first")
        }
    }

    /// Reports as much of the body as `buffer` holds, up to `remaining`; returns how many bytes that was.
    private func emitBody(_ buffer: UnsafeRawBufferPointer, from cursor: Int, upTo remaining: UInt64,
                          _ onEvent: (HTTPParserEvent) -> Void) -> Int {
        let available = buffer.count - cursor
        let taken = UInt64(available) < remaining ? available : Int(remaining)
        onEvent(.body(UnsafeRawBufferPointer(rebasing: buffer[cursor..<(cursor + taken)])))
        return taken
    }

    private func expectByte(_ wanted: UInt8, in buffer: UnsafeRawBufferPointer, at cursor: Int) throws(HTTPParseError) {
        guard buffer[cursor] == wanted else {
            throw .badRequest("chunk data not followed by CRLF", at: streamBase + cursor)
        }
    }

    private mutating func finishMessage(_ onEvent: (HTTPParserEvent) -> Void) {
        onEvent(.end)
        state = .requestLine
        emptyLinesBeforeRequest = 0
        message = MessageInProgress()
        messageEnded = true
    }

    // MARK: - Lines

    /// Where a line ends, once its LF is found within the limit.
    private enum LineScan {
        /// Every byte given was taken into `partialLine`; the line goes on in a later buffer.
        case incomplete
        /// The whole line (without its LF) lies in the caller's buffer at this range.
        case inPlace(Range<Int>)
        /// The line (without its LF) is in `partialLine`; parsing resumes at `next`.
        case assembled(next: Int)
        /// The line exceeds its limit; it began at this stream offset.
        case tooLong(lineStart: Int)
    }

    /// Finds the next complete line and hands it to the current state's grammar.
    private mutating func stepLine(_ buffer: UnsafeRawBufferPointer, from cursor: Int,
                                   _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) -> Int {
        let limit = currentLineLimit()
        switch scanLine(buffer, from: cursor, limit: limit.bytes) {
        case .incomplete:
            return buffer.count
        case .tooLong(let lineStart):
            throw limit.fault.error(at: lineStart + limit.bytes)
        case .inPlace(let range):
            try handleLine(UnsafeRawBufferPointer(rebasing: buffer[range]), at: streamBase + range.lowerBound, onEvent)
            return range.upperBound + 1
        case .assembled(let next):
            try handleAssembledLine(onEvent)
            return next
        }
    }

    /// Looks for LF no further than the limit allows, so a line is judged too long at the same byte
    /// however the stream was split; only a line split across reads is copied.
    private mutating func scanLine(_ buffer: UnsafeRawBufferPointer, from cursor: Int, limit: Int) -> LineScan {
        let held = partialLine.count
        // Room for the content, its CR and its LF; a held line is never longer than limit + 1.
        let window = min(buffer.count - cursor, limit + 2 - held)
        if let lf = firstLF(in: buffer, from: cursor, to: cursor + window) {
            let length = held + lf - cursor
            let last = lf > cursor ? buffer[lf - 1] : partialLine.last
            if length == limit + 1 && last != HTTPByte.cr {
                return .tooLong(lineStart: held == 0 ? streamBase + cursor : partialLineStart)
            }
            if held == 0 { return .inPlace(cursor..<lf) }
            partialLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[cursor..<lf]))
            return .assembled(next: lf + 1)
        }
        if held == 0 {
            partialLineStart = streamBase + cursor
            partialLine.reserveCapacity(min(limit + 2, 512))
        }
        partialLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[cursor..<(cursor + window)]))
        let length = partialLine.count
        if length > limit + 1 || (length == limit + 1 && partialLine[limit] != HTTPByte.cr) {
            return .tooLong(lineStart: partialLineStart)
        }
        return .incomplete
    }

    private func firstLF(in buffer: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int? {
        guard end > start, let base = buffer.baseAddress,
              let hit = memchr(base + start, Int32(HTTPByte.lf), end - start) else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// Parses the line held in `partialLine`, then empties it keeping its storage for the next split line.
    private mutating func handleAssembledLine(_ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) {
        // Swapped out so the line's grammar may mutate the parser while reading the bytes.
        var line: [UInt8] = []
        swap(&line, &partialLine)
        let lineStart = partialLineStart
        let failure: HTTPParseError? = line.withUnsafeBytes { bytes in
            do throws(HTTPParseError) {
                try handleLine(bytes, at: lineStart, onEvent)
                return nil
            } catch {
                return error
            }
        }
        line.removeAll(keepingCapacity: true)
        swap(&line, &partialLine)
        if let failure { throw failure }
    }

    /// Checks the CRLF ending of a line (given without its LF) and passes its content to the state's grammar.
    private mutating func handleLine(_ line: UnsafeRawBufferPointer, at lineStart: Int,
                                     _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) {
        guard let last = line.last, last == HTTPByte.cr else {
            throw .badRequest("LF not preceded by CR", at: lineStart + line.count)
        }
        let content = UnsafeRawBufferPointer(rebasing: line.dropLast())
        switch state {
        case .requestLine: try handleRequestLine(content, at: lineStart)
        case .fieldLine: try handleFieldLine(content, at: lineStart, onEvent)
        case .chunkSizeLine: try handleChunkSizeLine(content, at: lineStart)
        case .trailerLine: try handleTrailerLine(content, at: lineStart, onEvent)
        default: preconditionFailure("only line states read lines")
        }
    }

    private struct LineLimit {
        var bytes: Int
        var fault: LineFault
    }

    private enum LineFault {
        case requestLine, fieldLine, fieldSection, chunkLine

        func error(at offset: Int) -> HTTPParseError {
            switch self {
            case .requestLine: HTTPParseError(status: .uriTooLong, reason: "request line too long", offset: offset)
            case .fieldLine:
                HTTPParseError(status: .headerFieldsTooLarge, reason: "header field line too long", offset: offset)
            case .fieldSection:
                HTTPParseError(status: .headerFieldsTooLarge, reason: "header section too large", offset: offset)
            case .chunkLine: .badRequest("chunk size line too long", at: offset)
            }
        }
    }

    /// The longest content the next line may have, and how to fail when it is longer.
    private func currentLineLimit() -> LineLimit {
        switch state {
        case .requestLine:
            return LineLimit(bytes: limits.maxRequestLineBytes, fault: .requestLine)
        case .chunkSizeLine:
            return LineLimit(bytes: limits.maxChunkLineBytes, fault: .chunkLine)
        default:
            // A field line costs its content plus CRLF from the section's budget.
            let sectionRoom = max(0, limits.maxHeaderSectionBytes - message.sectionBytes - 2)
            if sectionRoom < limits.maxHeaderLineBytes { return LineLimit(bytes: sectionRoom, fault: .fieldSection) }
            return LineLimit(bytes: limits.maxHeaderLineBytes, fault: .fieldLine)
        }
    }

    // MARK: - Grammars of the lines

    private mutating func handleRequestLine(_ content: UnsafeRawBufferPointer,
                                            at lineStart: Int) throws(HTTPParseError) {
        if content.isEmpty {
            // RFC 9112 §2.2 lets a server skip empty lines before a request; a few, so CRLF floods end.
            emptyLinesBeforeRequest += 1
            if emptyLinesBeforeRequest > RequestLineGrammar.maxEmptyLinesBeforeRequest {
                throw .badRequest("too many empty lines before request", at: lineStart)
            }
            return
        }
        message.head = try RequestLineGrammar.parse(content, at: lineStart)
        state = .fieldLine
    }

    private mutating func handleFieldLine(_ content: UnsafeRawBufferPointer, at lineStart: Int,
                                          _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) {
        if content.isEmpty {
            try finishHead(at: lineStart, onEvent)
            return
        }
        let field = try FieldLineGrammar.parse(content, at: lineStart)
        try message.count(fieldLineOf: content.count, at: lineStart, limits: limits)
        try message.inspect(field, at: lineStart)
        message.head?.headers.add(name: field.nameString, value: field.valueString)
    }

    private mutating func handleTrailerLine(_ content: UnsafeRawBufferPointer, at lineStart: Int,
                                            _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) {
        if content.isEmpty {
            finishMessage(onEvent)
            return
        }
        // Trailers are checked like header fields but not kept: nothing downstream asks for them.
        _ = try FieldLineGrammar.parse(content, at: lineStart)
        try message.count(fieldLineOf: content.count, at: lineStart, limits: limits)
    }

    private mutating func handleChunkSizeLine(_ content: UnsafeRawBufferPointer,
                                              at lineStart: Int) throws(HTTPParseError) {
        let size = try ChunkLineGrammar.parse(content, at: lineStart)
        if size > 0 {
            state = .chunkData(remaining: size)
        } else {
            // The trailer section gets a budget of its own; the head's counters are spent.
            message = MessageInProgress()
            state = .trailerLine
        }
    }

    /// Decides framing and connection semantics at the end of the head and reports it.
    private mutating func finishHead(at lineStart: Int,
                                     _ onEvent: (HTTPParserEvent) -> Void) throws(HTTPParseError) {
        guard let head = try message.completedHead(at: lineStart) else {
            preconditionFailure("field lines are read only after a request line")
        }
        message = MessageInProgress()
        onEvent(.head(head))
        switch head.framing {
        case .none, .length(0): finishMessage(onEvent)
        case .length(let length): state = .lengthBody(remaining: length)
        case .chunked: state = .chunkSizeLine
        }
    }
}

// MARK: - Byte classes

/// Byte classes and constants of the HTTP/1.1 grammar.
enum HTTPByte {
    static let htab: UInt8 = 0x09
    static let lf: UInt8 = 0x0A
    static let cr: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let comma: UInt8 = 0x2C
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B

    /// Bits of the RFC 9110 `tchar` set for bytes 0–63 and 64–127, so a lookup costs no table load.
    static let tokenMaskLow: UInt64 = 0x03ff_6cfa_0000_0000
    static let tokenMaskHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    @inline(__always) static func isToken(_ byte: UInt8) -> Bool {
        let mask = byte < 64 ? tokenMaskLow : (byte < 128 ? tokenMaskHigh : 0)
        return (mask >> UInt64(byte & 63)) & 1 == 1
    }

    @inline(__always) static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == htab }

    /// Field values and chunk extensions: visible ASCII, SP, HTAB and obs-text; no other control byte.
    @inline(__always) static func isFieldText(_ byte: UInt8) -> Bool {
        byte == htab || (byte >= 0x20 && byte != 0x7F)
    }

    /// The index of the first byte in `start..<end` that is not field text, or nil.
    static func firstNonFieldText(in bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int? {
        var index = start
        // Values such as cookies and user agents are long: clear eight bytes at a time when none is a
        // control byte, and look at single bytes only around one (HTAB included, which is allowed).
        if let base = bytes.baseAddress {
            while index + 8 <= end {
                if mayHoldControlByte(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    for position in index..<(index + 8) where !isFieldText(bytes[position]) { return position }
                }
                index += 8
            }
        }
        for position in index..<end where !isFieldText(bytes[position]) { return position }
        return nil
    }

    /// True when some byte of `word` is below 0x20 or is DEL; never false when one is.
    @inline(__always) static func mayHoldControlByte(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highBits: UInt64 = 0x8080_8080_8080_8080
        let below20 = (word &- ones &* 0x20) & ~word & highBits
        let delta = word ^ (ones &* 0x7F)
        let isDEL = (delta &- ones) & ~delta & highBits
        return below20 | isDEL != 0
    }

    /// Request targets: visible ASCII only.
    @inline(__always) static func isTargetByte(_ byte: UInt8) -> Bool { byte >= 0x21 && byte <= 0x7E }

    @inline(__always) static func hexValue(_ byte: UInt8) -> UInt64? {
        switch byte {
        case 0x30...0x39: return UInt64(byte - 0x30)
        case 0x41...0x46: return UInt64(byte - 0x41 + 10)
        case 0x61...0x66: return UInt64(byte - 0x61 + 10)
        default: return nil
        }
    }

    /// A reason naming a stray byte, with CR called out because a lone CR is the usual culprit.
    static func describe(_ byte: UInt8, in place: String) -> String {
        switch byte {
        case cr: return "CR not followed by LF in \(place)"
        case 0: return "NUL in \(place)"
        case ..<0x20, 0x7F: return "control character in \(place)"
        default: return "invalid character in \(place)"
        }
    }
}

// File-private so these helpers cannot clash with other byte helpers in the module.
fileprivate extension UnsafeRawBufferPointer {
    /// Compares with a lowercase ASCII literal, ignoring the case of these bytes.
    func equalsLowercased(_ literal: StaticString) -> Bool {
        guard count == literal.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for index in 0..<count where asciiLower(self[index]) != expected[index] { return false }
        return true
    }

    /// The bytes as a String; the grammars have already limited them to what the field allows.
    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: self[range]), as: UTF8.self)
    }

    /// Calls `body` with each element of a comma-separated list, OWS trimmed and empty elements skipped.
    func forEachListElement(_ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= count {
            var end = start
            while end < count && self[end] != HTTPByte.comma { end += 1 }
            var low = start, high = end
            while low < high && HTTPByte.isWhitespace(self[low]) { low += 1 }
            while high > low && HTTPByte.isWhitespace(self[high - 1]) { high -= 1 }
            if low < high { body(UnsafeRawBufferPointer(rebasing: self[low..<high])) }
            start = end + 1
        }
    }

    /// True when the bytes at `offset` spell the ASCII literal, exactly or ignoring case.
    func matches(_ literal: StaticString, at offset: Int = 0, ignoringCase: Bool = false) -> Bool {
        let length = literal.utf8CodeUnitCount
        guard offset + length <= count else { return false }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: length)
        for index in 0..<length {
            let byte = self[offset + index]
            if (ignoringCase ? asciiLower(byte) : byte) != expected[index] { return false }
        }
        return true
    }
}

// MARK: - The message being read

/// What the head has said so far, and the budgets it has spent.
private struct MessageInProgress {
    var head: HTTPRequestHead?
    var sectionBytes = 0
    var fieldCount = 0
    var hostCount = 0
    var contentLength: UInt64?
    var chunked = false
    var connectionClose = false
    var connectionKeepAlive = false
    var expectsContinue = false

    /// Spends a field line of `contentBytes` (CRLF excluded) from the count and section budgets.
    mutating func count(fieldLineOf contentBytes: Int, at lineStart: Int,
                        limits: HTTPParserLimits) throws(HTTPParseError) {
        fieldCount += 1
        guard fieldCount <= limits.maxHeaderCount else {
            throw HTTPParseError(status: .headerFieldsTooLarge, reason: "too many header fields", offset: lineStart)
        }
        // The line limit already kept the section within its budget; this records what was spent.
        sectionBytes += contentBytes + 2
    }

    /// Takes note of the fields that decide framing and connection handling, rejecting ambiguous ones.
    mutating func inspect(_ field: FieldLine, at lineStart: Int) throws(HTTPParseError) {
        let name = field.name, value = field.value
        switch name.count {
        case 4 where name.equalsLowercased("host"):
            hostCount += 1
            if hostCount > 1 { throw .badRequest("more than one Host header", at: lineStart) }
        case 6 where name.equalsLowercased("expect"):
            if value.equalsLowercased("100-continue") { expectsContinue = true }
        case 10 where name.equalsLowercased("connection"):
            noteConnection(value)
        case 14 where name.equalsLowercased("content-length"):
            try noteContentLength(value, at: lineStart, valueStart: lineStart + field.valueOffset)
        case 17 where name.equalsLowercased("transfer-encoding"):
            try noteTransferEncoding(value, at: lineStart, valueStart: lineStart + field.valueOffset)
        default:
            break
        }
    }

    private mutating func noteConnection(_ value: UnsafeRawBufferPointer) {
        value.forEachListElement { option in
            if option.equalsLowercased("close") {
                connectionClose = true
            } else if option.equalsLowercased("keep-alive") {
                connectionKeepAlive = true
            }
        }
    }

    private mutating func noteContentLength(_ value: UnsafeRawBufferPointer, at lineStart: Int,
                                            valueStart: Int) throws(HTTPParseError) {
        // Rejecting every repeat, equal or not, leaves no room for a proxy in front to read it differently.
        guard contentLength == nil else { throw .badRequest("more than one Content-Length", at: lineStart) }
        guard !chunked else { throw .badRequest("Content-Length with Transfer-Encoding", at: lineStart) }
        contentLength = try Self.parseContentLength(value, at: valueStart)
    }

    /// Most digits a Content-Length may have; 18 always fit in UInt64, so the sum cannot overflow.
    static let maxContentLengthDigits = 18

    static func parseContentLength(_ value: UnsafeRawBufferPointer,
                                   at valueStart: Int) throws(HTTPParseError) -> UInt64 {
        guard !value.isEmpty else { throw .badRequest("empty Content-Length", at: valueStart) }
        var length: UInt64 = 0
        for index in 0..<value.count {
            let byte = value[index]
            guard byte >= 0x30 && byte <= 0x39 else {
                throw .badRequest("Content-Length is not a decimal number", at: valueStart + index)
            }
            guard index < maxContentLengthDigits else {
                throw .badRequest("Content-Length has too many digits", at: valueStart + index)
            }
            length = length * 10 + UInt64(byte - 0x30)
        }
        return length
    }

    private mutating func noteTransferEncoding(_ value: UnsafeRawBufferPointer, at lineStart: Int,
                                               valueStart: Int) throws(HTTPParseError) {
        guard !chunked else { throw .badRequest("more than one Transfer-Encoding", at: lineStart) }
        guard contentLength == nil else {
            throw .badRequest("Content-Length with Transfer-Encoding", at: lineStart)
        }
        // RFC 9112 §6.1: an HTTP/1.0 peer cannot have meant chunked, so the framing is not to be trusted.
        guard head?.version != .http1_0 else {
            throw .badRequest("Transfer-Encoding in HTTP/1.0", at: lineStart)
        }
        try Self.checkCodings(value, at: valueStart)
        chunked = true
    }

    /// Accepts a coding list that is exactly `chunked`; anything applied before it is not decoded here.
    static func checkCodings(_ value: UnsafeRawBufferPointer, at valueStart: Int) throws(HTTPParseError) {
        var codings = 0, lastIsChunked = false, chunkedEarlier = false, otherEarlier = false
        value.forEachListElement { coding in
            if lastIsChunked { chunkedEarlier = true } else if codings > 0 { otherEarlier = true }
            codings += 1
            lastIsChunked = coding.equalsLowercased("chunked")
        }
        guard lastIsChunked else {
            throw .badRequest("Transfer-Encoding does not end in chunked", at: valueStart)
        }
        guard !chunkedEarlier else { throw .badRequest("chunked applied more than once", at: valueStart) }
        guard !otherEarlier else {
            throw HTTPParseError(status: .notImplemented, reason: "unsupported transfer coding", offset: valueStart)
        }
    }

    /// The head with framing, keep-alive and expectation decided; nil before a request line was read.
    func completedHead(at lineStart: Int) throws(HTTPParseError) -> HTTPRequestHead? {
        guard var head else { return nil }
        if head.version == .http1_1 && hostCount == 0 {
            throw .badRequest("missing Host header", at: lineStart)
        }
        if chunked {
            head.framing = .chunked
        } else if let contentLength {
            head.framing = .length(contentLength)
        }
        head.keepAlive = !connectionClose && (head.version == .http1_1 || connectionKeepAlive)
        head.expectsContinue = expectsContinue && head.version == .http1_1
        return head
    }
}

// MARK: - Grammars

/// The request line, `method SP request-target SP HTTP-version` (RFC 9112 §3).
private enum RequestLineGrammar {
    /// Empty lines skipped before a request line before the stream counts as garbage.
    static let maxEmptyLinesBeforeRequest = 8

    static func parse(_ line: UnsafeRawBufferPointer, at lineStart: Int) throws(HTTPParseError) -> HTTPRequestHead {
        let methodEnd = try scanMethod(line, at: lineStart)
        let target = try scanTarget(line, from: methodEnd + 1, at: lineStart)
        try checkTargetForm(line, methodEnd: methodEnd, target: target, at: lineStart)
        let version = try parseVersion(line, from: target.upperBound + 1, at: lineStart)
        return HTTPRequestHead(method: HTTPMethod(rawValue: line.string(0..<methodEnd)),
                               target: line.string(target), version: version, headers: HTTPHeaders())
    }

    /// Returns the index of the SP that ends the method token.
    private static func scanMethod(_ line: UnsafeRawBufferPointer, at lineStart: Int) throws(HTTPParseError) -> Int {
        var index = 0
        while index < line.count && HTTPByte.isToken(line[index]) { index += 1 }
        guard index < line.count else { throw .badRequest("request line has no target", at: lineStart + index) }
        guard line[index] == HTTPByte.space else {
            throw .badRequest(HTTPByte.describe(line[index], in: "method"), at: lineStart + index)
        }
        guard index > 0 else { throw .badRequest("empty method", at: lineStart) }
        return index
    }

    /// Returns the target's range; it must be followed by exactly the SP before the version.
    private static func scanTarget(_ line: UnsafeRawBufferPointer, from start: Int,
                                   at lineStart: Int) throws(HTTPParseError) -> Range<Int> {
        var index = start
        while index < line.count && HTTPByte.isTargetByte(line[index]) { index += 1 }
        if index < line.count && line[index] != HTTPByte.space {
            throw .badRequest(HTTPByte.describe(line[index], in: "request target"), at: lineStart + index)
        }
        guard index > start else { throw .badRequest("empty request target", at: lineStart + start) }
        guard index < line.count else {
            throw .badRequest("request line has no HTTP version", at: lineStart + index)
        }
        return start..<index
    }

    /// Accepts origin-form, absolute-form with an http(s) scheme, and `*` for OPTIONS only.
    private static func checkTargetForm(_ line: UnsafeRawBufferPointer, methodEnd: Int, target: Range<Int>,
                                        at lineStart: Int) throws(HTTPParseError) {
        let first = line[target.lowerBound]
        if first == UInt8(ascii: "/") { return }
        if first == UInt8(ascii: "*") {
            let isOptions = methodEnd == 7 && line.matches("OPTIONS")
            guard target.count == 1 && isOptions else {
                throw .badRequest("asterisk-form target outside OPTIONS", at: lineStart + target.lowerBound)
            }
            return
        }
        for scheme: StaticString in ["http://", "https://"]
        where line.matches(scheme, at: target.lowerBound, ignoringCase: true)
            && target.count > scheme.utf8CodeUnitCount {
            return
        }
        throw .badRequest("unsupported request target form", at: lineStart + target.lowerBound)
    }

    /// Parses `HTTP/d.d`; well-formed versions other than 1.0 and 1.1 are refused with 505.
    private static func parseVersion(_ line: UnsafeRawBufferPointer, from start: Int,
                                     at lineStart: Int) throws(HTTPParseError) -> HTTPVersion {
        let isDigit = { (byte: UInt8) in byte >= 0x30 && byte <= 0x39 }
        guard line.count - start == 8, line.matches("HTTP/", at: start), isDigit(line[start + 5]),
              line[start + 6] == UInt8(ascii: "."), isDigit(line[start + 7]) else {
            throw .badRequest("malformed HTTP version", at: lineStart + start)
        }
        switch (line[start + 5], line[start + 7]) {
        case (UInt8(ascii: "1"), UInt8(ascii: "1")): return .http1_1
        case (UInt8(ascii: "1"), UInt8(ascii: "0")): return .http1_0
        default:
            throw HTTPParseError(status: .versionNotSupported, reason: "HTTP version not supported",
                                 offset: lineStart + start)
        }
    }
}

/// One field line split into name and OWS-trimmed value; both point into the line being parsed.
private struct FieldLine {
    var name: UnsafeRawBufferPointer
    var value: UnsafeRawBufferPointer
    /// Where the value starts within the line, for error offsets.
    var valueOffset: Int

    var nameString: String { name.string(0..<name.count) }
    /// Known shortcoming: obs-text that is not UTF-8 (Latin-1, say) becomes U+FFFD here, because
    /// HTTPHeaders holds Strings; keeping such bytes exactly would need a byte-valued field store.
    var valueString: String { value.string(0..<value.count) }
}

/// A header or trailer field line, `field-name ":" OWS field-value OWS` (RFC 9112 §5).
private enum FieldLineGrammar {
    static func parse(_ line: UnsafeRawBufferPointer, at lineStart: Int) throws(HTTPParseError) -> FieldLine {
        guard !HTTPByte.isWhitespace(line[0]) else { throw .badRequest("obsolete line folding", at: lineStart) }
        var colon = 0
        while colon < line.count && HTTPByte.isToken(line[colon]) { colon += 1 }
        guard colon < line.count && line[colon] == HTTPByte.colon else {
            throw nameError(line, at: colon, lineStart: lineStart)
        }
        guard colon > 0 else { throw .badRequest("empty field name", at: lineStart) }

        var start = colon + 1, end = line.count
        while start < end && HTTPByte.isWhitespace(line[start]) { start += 1 }
        while end > start && HTTPByte.isWhitespace(line[end - 1]) { end -= 1 }
        if let index = HTTPByte.firstNonFieldText(in: line, from: start, to: end) {
            throw .badRequest(HTTPByte.describe(line[index], in: "field value"), at: lineStart + index)
        }
        return FieldLine(name: UnsafeRawBufferPointer(rebasing: line[0..<colon]),
                         value: UnsafeRawBufferPointer(rebasing: line[start..<end]), valueOffset: start)
    }

    private static func nameError(_ line: UnsafeRawBufferPointer, at index: Int, lineStart: Int) -> HTTPParseError {
        guard index < line.count else { return .badRequest("field line has no colon", at: lineStart + index) }
        if HTTPByte.isWhitespace(line[index]) {
            return .badRequest("whitespace before colon", at: lineStart + index)
        }
        return .badRequest(HTTPByte.describe(line[index], in: "field name"), at: lineStart + index)
    }
}

/// A chunk-size line, `chunk-size [ chunk-ext ]` (RFC 9112 §7.1); extensions are checked, not kept.
private enum ChunkLineGrammar {
    /// Sixteen hex digits fill UInt64 exactly, so a size that passes this cannot overflow.
    static let maxSizeDigits = 16

    static func parse(_ line: UnsafeRawBufferPointer, at lineStart: Int) throws(HTTPParseError) -> UInt64 {
        var size: UInt64 = 0, index = 0
        while index < line.count, let digit = HTTPByte.hexValue(line[index]) {
            guard index < maxSizeDigits else { throw .badRequest("chunk size too long", at: lineStart + index) }
            size = size << 4 | digit
            index += 1
        }
        guard index > 0 else { throw .badRequest("missing chunk size", at: lineStart) }
        try checkExtensions(line, from: index, at: lineStart)
        return size
    }

    /// After the size: nothing, or BWS then `;` and extension text (visible bytes, SP, HTAB, obs-text).
    private static func checkExtensions(_ line: UnsafeRawBufferPointer, from sizeEnd: Int,
                                        at lineStart: Int) throws(HTTPParseError) {
        var index = sizeEnd
        while index < line.count && HTTPByte.isWhitespace(line[index]) { index += 1 }
        guard index < line.count else {
            guard index == sizeEnd else { throw .badRequest("whitespace after chunk size", at: lineStart + sizeEnd) }
            return
        }
        guard line[index] == HTTPByte.semicolon else {
            throw .badRequest(HTTPByte.describe(line[index], in: "chunk size"), at: lineStart + index)
        }
        for position in (index + 1)..<line.count where !HTTPByte.isFieldText(line[position]) {
            throw .badRequest(HTTPByte.describe(line[position], in: "chunk extension"), at: lineStart + position)
        }
    }
}
