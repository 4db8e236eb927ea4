#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A streaming multipart/form-data reader (RFC 7578 over RFC 2046). Line endings, as decided here:
// - the delimiter before a part is strictly CRLF "--" boundary, except that the body may open with
//   "--" boundary; a boundary after a bare LF is body data, so an LF-only body fails in `finish()`
//   rather than having its files cut short;
// - the rest of a delimiter line (padding, then the line end) and every part header line may end in
//   CRLF or in a bare LF, as some clients send.

/// Limits on one multipart body, checked while it streams.
public struct MultipartLimits: Sendable, Equatable {
    /// Bytes of one part's header block, line endings and the closing blank line included; default 16 KiB.
    public var maxPartHeaderBytes = 16 * 1024
    /// Parts in one body; default 100 000, well above a photo set, yet a bound on per-part work downstream.
    public var maxParts = 100_000

    /// The defaults above; set the properties to change them.
    public init() {}

    /// Throws OptionsError unless both limits are at least one.
    public func validate() throws {
        if maxPartHeaderBytes < 1 {
            throw OptionsError("maxPartHeaderBytes must be at least 1 byte, not \(maxPartHeaderBytes)")
        }
        if maxParts < 1 { throw OptionsError("maxParts must be at least 1, not \(maxParts)") }
    }
}

/// What a part's header block says, as the gateway needs it, plus every header as sent.
public struct MultipartPartHead: Sendable, Equatable {
    /// The `name` parameter of a `form-data` Content-Disposition; nil without one.
    public var name: String?
    /// `filename*` (RFC 8187, UTF-8) when it decodes, else `filename` exactly as sent (not percent-decoded).
    public var filename: String?
    /// The first Content-Type value, OWS trimmed.
    public var contentType: String?
    /// Every header line in order, names as sent and values OWS trimmed; bytes that are not UTF-8 become U+FFFD.
    public var headers: [(name: String, value: String)]

    /// Creates a head; the parser is the usual source, tests build their own.
    public init(name: String? = nil, filename: String? = nil, contentType: String? = nil,
                headers: [(name: String, value: String)] = []) {
        self.name = name
        self.filename = filename
        self.contentType = contentType
        self.headers = headers
    }

    /// Field by field, headers in order; written out because tuples are not Equatable.
    public static func == (lhs: MultipartPartHead, rhs: MultipartPartHead) -> Bool {
        lhs.name == rhs.name && lhs.filename == rhs.filename && lhs.contentType == rhs.contentType
            && lhs.headers.elementsEqual(rhs.headers) { $0.name == $1.name && $0.value == $1.value }
    }
}

/// What the multipart parser reports while it consumes a body.
public enum MultipartEvent {
    /// A part's header block is complete; its body follows.
    case partBegin(MultipartPartHead)
    /// Bytes of the current part's body, in order; valid only during the callback.
    case partData(UnsafeRawBufferPointer)
    /// The current part's body is complete: a well-formed delimiter followed it.
    case partEnd
    /// The close delimiter was seen; whatever follows is epilogue and is ignored.
    case end
}

/// Why a multipart body was refused, and where in it.
public struct MultipartError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Short human text naming the broken rule; the API answers 400 with "Invalid multipart body: <reason>".
    public var reason: String
    /// Byte offset, counted from the body's first byte, of the byte where the fault was found.
    public var offset: UInt64

    /// Creates an error; the parser is the usual source, tests and callers may build their own.
    public init(reason: String, offset: UInt64) {
        self.reason = reason
        self.offset = offset
    }

    /// The reason and the offset, for logs.
    public var description: String { "\(reason) (at byte \(offset))" }
}

/// An incremental multipart/form-data parser that does no I/O and never buffers a part's body.
///
/// Body bytes are handed out as slices of the caller's buffer. Only a possible delimiter start cut off by the
/// end of a buffer (fewer bytes than CRLF "--" boundary) is kept back, and it is handed out, from a small
/// buffer, as soon as the next bytes show it is data.
public struct MultipartParser: Sendable {
    private enum State: Sendable {
        /// Before the first delimiter; bytes are dropped.
        case preamble
        /// Inside a part's body.
        case body
        /// Just after a matched delimiter, reading the rest of its line.
        case delimiterTail(DelimiterTail)
        /// Reading a part's header lines.
        case headers
        /// After the close delimiter; bytes are dropped.
        case epilogue
    }

    private enum DelimiterTail: Sendable {
        case matched, oneDash, padding, carriageReturn
    }

    private let limits: MultipartLimits
    /// CRLF "--" boundary. Its only CR is the first byte, since boundaries cannot hold one; so a failed
    /// partial match can restart at the byte that broke it, without looking back.
    private let delimiter: [UInt8]
    private var state = State.preamble
    private var failure: MultipartError?
    /// The start of a delimiter seen at the end of the previous buffer, never a whole one. It begins as CRLF,
    /// which counts as matched but is no body byte, so a body that opens with `--boundary` needs no special case.
    private var held: [UInt8]
    /// Stream offset of the first byte of the buffer now being parsed.
    private var streamBase: UInt64 = 0
    /// Whether a partBegin was reported without its partEnd yet.
    private var inPart = false
    /// Parts begun so far, for maxParts.
    private var partCount = 0
    /// Bytes of the current header block consumed so far, for maxPartHeaderBytes.
    private var headerBytes = 0
    /// A header line split across buffers; empty while lines arrive whole, which are parsed in place.
    private var headerLine: [UInt8] = []
    private var headerLineStart: UInt64 = 0
    private var partHead = PartHeadBuilder()

    /// The boundary from a Content-Type value such as `multipart/form-data; boundary="abc"` (quoted or token,
    /// case-insensitive parameter name, 1–70 chars per RFC 2046), nil when the type is not multipart/form-data
    /// or the boundary is missing/invalid. A repeated boundary parameter is ambiguous and also gives nil.
    public static func boundary(fromContentType value: String) -> String? {
        let bytes = Array(value.utf8)
        let parsed = bytes.withUnsafeBytes { try? ParameterGrammar.parse($0) }
        guard let parsed, parsed.type == "multipart/form-data" else { return nil }
        let values = parsed.parameters.filter { $0.name == "boundary" }
        guard values.count == 1, isValidBoundary(values[0].value) else { return nil }
        return String(decoding: values[0].value, as: UTF8.self)
    }

    /// True for 1–70 characters from RFC 2046's `bchars` (letters, digits, `'()+_,-./:=?` and space),
    /// the last not a space.
    public static func isValidBoundary(_ boundary: String) -> Bool { isValidBoundary(Array(boundary.utf8)) }

    private static func isValidBoundary(_ bytes: [UInt8]) -> Bool {
        guard (1...70).contains(bytes.count), bytes.last != HTTPByte.space else { return false }
        return bytes.allSatisfy(MultipartByte.isBoundaryChar)
    }

    /// Creates a parser for one body. The boundary must satisfy `isValidBoundary` (take it from
    /// `boundary(fromContentType:)`) and the limits must validate; anything else is a programming error.
    public init(boundary: String, limits: MultipartLimits = MultipartLimits()) {
        precondition(Self.isValidBoundary(boundary), "not an RFC 2046 boundary: \(boundary.debugDescription)")
        precondition((try? limits.validate()) != nil, "MultipartLimits must all be at least 1: \(limits)")
        self.limits = limits
        delimiter = [HTTPByte.cr, HTTPByte.lf, MultipartByte.dash, MultipartByte.dash] + Array(boundary.utf8)
        held = [HTTPByte.cr, HTTPByte.lf]
        held.reserveCapacity(delimiter.count)
    }

    /// True once the close delimiter has been seen.
    public var isComplete: Bool {
        if case .epilogue = state { return true }
        return false
    }

    /// Feeds the next bytes in any chunking; calls `handle` for each event in order. Rethrows handler errors.
    /// Once it has thrown, it keeps throwing: its own error again, or after a handler's error a MultipartError
    /// saying so, at the offset of the step that the handler interrupted.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (MultipartEvent) throws -> Void) throws {
        if let failure { throw failure }
        var cursor = 0
        do {
            while cursor < bytes.count { cursor = try step(bytes, from: cursor, handle) }
        } catch {
            fail(error as? MultipartError
                 ?? MultipartError(reason: "parsing stopped by the upload handler", offset: offset(of: cursor)))
            throw error
        }
        streamBase += UInt64(bytes.count)
    }

    /// The body ended: throws MultipartError unless the close delimiter was seen.
    public mutating func finish() throws(MultipartError) {
        if let failure { throw failure }
        let reason: String
        switch state {
        case .epilogue: return
        case .preamble: reason = "body ended before the first boundary"
        case .headers: reason = "body ended inside a part's headers"
        case .body, .delimiterTail: reason = "body ended before the closing boundary"
        }
        let error = MultipartError(reason: reason, offset: streamBase)
        fail(error)
        throw error
    }

    private mutating func fail(_ error: MultipartError) {
        failure = error
        held = []
        headerLine = []
        partHead = PartHeadBuilder()
    }

    private func offset(of index: Int) -> UInt64 { streamBase + UInt64(index) }

    private func error(_ reason: String, at index: Int) -> MultipartError {
        MultipartError(reason: reason, offset: offset(of: index))
    }

    // MARK: - States

    /// Advances through one state; returns where parsing resumes in `buffer`.
    private mutating func step(_ buffer: UnsafeRawBufferPointer, from cursor: Int,
                               _ handle: (MultipartEvent) throws -> Void) throws -> Int {
        switch state {
        case .preamble, .body:
            return try stepScan(buffer, from: cursor, handle)
        case .delimiterTail(let tail):
            try stepTail(tail, byte: buffer[cursor], at: cursor, handle)
            return cursor + 1
        case .headers:
            return try stepHeaderLine(buffer, from: cursor, handle)
        case .epilogue:
            return buffer.count
        }
    }

    // MARK: - Looking for the delimiter

    /// Settles a held-back delimiter start against the new bytes, then scans for the next delimiter.
    private mutating func stepScan(_ buffer: UnsafeRawBufferPointer, from cursor: Int,
                                   _ handle: (MultipartEvent) throws -> Void) throws -> Int {
        guard !held.isEmpty else { return try scan(buffer, from: cursor, handle) }
        let matched = heldMatchExtent(buffer, from: cursor)
        if held.count + matched == delimiter.count {
            held.removeAll(keepingCapacity: true)
            state = .delimiterTail(.matched)
            return cursor + matched
        }
        if cursor + matched == buffer.count {
            held.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[cursor...]))
            return buffer.count
        }
        // Not a delimiter after all: the held bytes are data. The matched new bytes hold no CR, so the scan
        // may hand them out with what follows.
        try emitHeld(handle)
        return try scan(buffer, from: cursor, handle)
    }

    /// How many bytes from `cursor` go on matching the delimiter after the held bytes.
    private func heldMatchExtent(_ buffer: UnsafeRawBufferPointer, from cursor: Int) -> Int {
        let wanted = min(delimiter.count - held.count, buffer.count - cursor)
        var matched = 0
        while matched < wanted && buffer[cursor + matched] == delimiter[held.count + matched] { matched += 1 }
        return matched
    }

    /// Hands out the bytes before the next delimiter and consumes it; a delimiter start cut off by the end
    /// of the buffer is held back. Jumps from CR to CR with memchr, so plain data costs no per-byte loop.
    private mutating func scan(_ buffer: UnsafeRawBufferPointer, from cursor: Int,
                               _ handle: (MultipartEvent) throws -> Void) throws -> Int {
        var search = cursor
        while let cr = firstIndex(of: HTTPByte.cr, in: buffer, from: search, to: buffer.count) {
            let available = min(buffer.count - cr, delimiter.count)
            guard startsDelimiter(buffer, at: cr, count: available) else {
                search = cr + 1
                continue
            }
            try emit(buffer, cursor..<cr, handle)
            if available == delimiter.count {
                state = .delimiterTail(.matched)
                return cr + available
            }
            held.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[cr...]))
            return buffer.count
        }
        try emit(buffer, cursor..<buffer.count, handle)
        return buffer.count
    }

    /// True when the `count` bytes at `index` equal the delimiter's first `count` bytes.
    private func startsDelimiter(_ buffer: UnsafeRawBufferPointer, at index: Int, count: Int) -> Bool {
        guard let base = buffer.baseAddress else { return false }
        return delimiter.withUnsafeBytes { wanted in
            guard let wantedBase = wanted.baseAddress else { return false }
            return memcmp(base + index, wantedBase, count) == 0
        }
    }

    /// Reports body bytes in place; preamble bytes and empty ranges are dropped.
    private func emit(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>,
                      _ handle: (MultipartEvent) throws -> Void) throws {
        guard case .body = state, !range.isEmpty else { return }
        try handle(.partData(UnsafeRawBufferPointer(rebasing: buffer[range])))
    }

    /// Reports the held-back bytes as body data (or drops them in the preamble) and empties the buffer.
    private mutating func emitHeld(_ handle: (MultipartEvent) throws -> Void) throws {
        if case .body = state { try held.withUnsafeBytes { try handle(.partData($0)) } }
        held.removeAll(keepingCapacity: true)
    }

    // MARK: - The rest of a delimiter line

    /// After `--boundary`: `--` closes the body; otherwise padding (SP, HTAB) and CRLF or LF start a part.
    private mutating func stepTail(_ tail: DelimiterTail, byte: UInt8, at index: Int,
                                   _ handle: (MultipartEvent) throws -> Void) throws {
        switch (tail, byte) {
        case (.matched, MultipartByte.dash):
            state = .delimiterTail(.oneDash)
        case (.oneDash, MultipartByte.dash):
            try closeBody(handle)
        case (.matched, HTTPByte.space), (.matched, HTTPByte.htab),
             (.padding, HTTPByte.space), (.padding, HTTPByte.htab):
            state = .delimiterTail(.padding)
        case (.matched, HTTPByte.cr), (.padding, HTTPByte.cr):
            state = .delimiterTail(.carriageReturn)
        case (.matched, HTTPByte.lf), (.padding, HTTPByte.lf), (.carriageReturn, HTTPByte.lf):
            try beginPart(headersAt: index + 1, handle)
        case (.carriageReturn, _):
            throw error("CR not followed by LF after boundary", at: index)
        default:
            throw error("boundary not followed by CRLF or --", at: index)
        }
    }

    private mutating func endPart(_ handle: (MultipartEvent) throws -> Void) throws {
        guard inPart else { return }
        inPart = false
        try handle(.partEnd)
    }

    private mutating func closeBody(_ handle: (MultipartEvent) throws -> Void) throws {
        try endPart(handle)
        state = .epilogue
        try handle(.end)
    }

    /// Ends the part before the delimiter, if any, and counts the one whose headers start at `index`.
    private mutating func beginPart(headersAt index: Int, _ handle: (MultipartEvent) throws -> Void) throws {
        try endPart(handle)
        guard partCount < limits.maxParts else { throw error("more than \(limits.maxParts) parts", at: index) }
        partCount += 1
        headerBytes = 0
        state = .headers
    }

    // MARK: - Part headers

    /// Takes bytes up to the next LF, no further than the header budget allows, so a block is judged too
    /// large at the same byte however the body was split; only a line split across buffers is copied.
    private mutating func stepHeaderLine(_ buffer: UnsafeRawBufferPointer, from cursor: Int,
                                         _ handle: (MultipartEvent) throws -> Void) throws -> Int {
        let room = limits.maxPartHeaderBytes - headerBytes
        guard room > 0 else {
            throw error("part headers longer than \(limits.maxPartHeaderBytes) bytes", at: cursor)
        }
        if headerLine.isEmpty { headerLineStart = offset(of: cursor) }
        let window = min(buffer.count - cursor, room)
        guard let lf = firstIndex(of: HTTPByte.lf, in: buffer, from: cursor, to: cursor + window) else {
            headerLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[cursor..<(cursor + window)]))
            headerBytes += window
            return cursor + window
        }
        headerBytes += lf + 1 - cursor
        let field = try completeHeaderLine(UnsafeRawBufferPointer(rebasing: buffer[cursor..<lf]))
        if let field {
            partHead.add(field)
        } else {
            try beginPartBody(handle)
        }
        return lf + 1
    }

    /// Parses the line whose last piece (LF excluded) is `tail`; nil for the blank line that ends the block.
    private mutating func completeHeaderLine(_ tail: UnsafeRawBufferPointer) throws -> PartHeaderField? {
        guard !headerLine.isEmpty else { return try PartHeaderGrammar.parse(tail, at: headerLineStart) }
        headerLine.append(contentsOf: tail)
        let start = headerLineStart
        let field = try headerLine.withUnsafeBytes { try PartHeaderGrammar.parse($0, at: start) }
        headerLine.removeAll(keepingCapacity: true)
        return field
    }

    private mutating func beginPartBody(_ handle: (MultipartEvent) throws -> Void) throws {
        let head = partHead.head
        partHead = PartHeadBuilder()
        state = .body
        inPart = true
        try handle(.partBegin(head))
    }
}

/// The index of the first `byte` in `start..<end`, found with memchr.
private func firstIndex(of byte: UInt8, in buffer: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int? {
    guard end > start, let base = buffer.baseAddress,
          let hit = memchr(base + start, Int32(byte), end - start) else { return nil }
    return base.distance(to: UnsafeRawPointer(hit))
}

// MARK: - Byte classes

private enum MultipartByte {
    static let dash = UInt8(ascii: "-")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let apostrophe = UInt8(ascii: "'")
    static let percent = UInt8(ascii: "%")
    static let equals = UInt8(ascii: "=")

    static let boundaryPunctuation = Array("'()+_,-./:=? ".utf8)

    /// RFC 2046 `bchars`: DIGIT / ALPHA / `'()+_,-./:=?` / SP.
    static func isBoundaryChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return boundaryPunctuation.contains(byte)
        }
    }

    /// RFC 8187 `attr-char`: a token character other than `*`, `'` and `%`.
    static func isAttrChar(_ byte: UInt8) -> Bool {
        HTTPByte.isToken(byte) && byte != UInt8(ascii: "*") && byte != apostrophe && byte != percent
    }

    /// A parameter value written without quotes: visible bytes (obs-text too) other than `;` and `"`.
    static func isBareValueByte(_ byte: UInt8) -> Bool {
        byte > HTTPByte.space && byte != 0x7F && byte != HTTPByte.semicolon && byte != quote
    }
}

// MARK: - Header lines

/// One part header line: name as sent, value OWS trimmed, and what the head builder needs from it.
private struct PartHeaderField: Sendable {
    enum Kind: Sendable {
        case disposition(Disposition)
        case contentType
        case other
    }

    var name: String
    var value: String
    var kind: Kind
}

/// A part header line, `name ":" OWS value OWS`, ended by CRLF or a bare LF; folding is refused.
private enum PartHeaderGrammar {
    /// Parses one line given without its LF; nil for the blank line that ends the header block.
    static func parse(_ raw: UnsafeRawBufferPointer,
                      at lineStart: UInt64) throws(MultipartError) -> PartHeaderField? {
        let line = raw.last == HTTPByte.cr ? UnsafeRawBufferPointer(rebasing: raw.dropLast()) : raw
        guard let first = line.first else { return nil }
        let fault = { (reason: String, index: Int) in
            MultipartError(reason: reason, offset: lineStart + UInt64(index))
        }
        guard !HTTPByte.isWhitespace(first) else { throw fault("obsolete line folding in part header", 0) }
        let colon = try nameEnd(line, fault)

        var start = colon + 1, end = line.count
        while start < end && HTTPByte.isWhitespace(line[start]) { start += 1 }
        while end > start && HTTPByte.isWhitespace(line[end - 1]) { end -= 1 }
        if let index = HTTPByte.firstNonFieldText(in: line, from: start, to: end) {
            throw fault(HTTPByte.describe(line[index], in: "part header"), index)
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<colon]), as: UTF8.self)
        let value = UnsafeRawBufferPointer(rebasing: line[start..<end])
        let kind = try classify(name, value) { fault("malformed Content-Disposition", start + $0) }
        return PartHeaderField(name: name, value: String(decoding: value, as: UTF8.self), kind: kind)
    }

    /// The index of the colon that ends a token name.
    private static func nameEnd(_ line: UnsafeRawBufferPointer,
                                _ fault: (String, Int) -> MultipartError) throws(MultipartError) -> Int {
        guard line.contains(HTTPByte.colon) else { throw fault("part header line has no colon", 0) }
        var colon = 0
        while HTTPByte.isToken(line[colon]) { colon += 1 }
        guard line[colon] == HTTPByte.colon else {
            if HTTPByte.isWhitespace(line[colon]) { throw fault("whitespace before colon in part header", colon) }
            throw fault(HTTPByte.describe(line[colon], in: "part header name"), colon)
        }
        guard colon > 0 else { throw fault("empty part header name", 0) }
        return colon
    }

    /// Parses Content-Disposition now, while its raw bytes are at hand, so a fault has an exact offset.
    private static func classify(_ name: String, _ value: UnsafeRawBufferPointer,
                                 _ malformed: (Int) -> MultipartError) throws(MultipartError) -> PartHeaderField.Kind {
        if name.caseInsensitiveEquals("content-type") { return .contentType }
        guard name.caseInsensitiveEquals("content-disposition") else { return .other }
        do throws(ParameterGrammar.Fault) {
            return .disposition(Disposition(try ParameterGrammar.parse(value)))
        } catch {
            throw malformed(error.index)
        }
    }
}

/// Gathers a part's headers; the first Content-Disposition and the first Content-Type count.
private struct PartHeadBuilder: Sendable {
    var head = MultipartPartHead()
    var sawDisposition = false

    mutating func add(_ field: PartHeaderField) {
        head.headers.append((name: field.name, value: field.value))
        switch field.kind {
        case .disposition(let disposition) where !sawDisposition:
            sawDisposition = true
            head.name = disposition.name
            head.filename = disposition.filename
        case .contentType where head.contentType == nil:
            head.contentType = field.value
        default:
            break
        }
    }
}

/// The `form-data` names a Content-Disposition gives; both nil for any other disposition type.
private struct Disposition: Sendable {
    var name: String?
    var filename: String?

    init(_ list: ParameterList) {
        guard list.type == "form-data" else { return }
        name = list.first("name").map { String(decoding: $0, as: UTF8.self) }
        // Plain filename is kept as sent: browsers write `"` as %22 there, and decoding it would invent
        // characters the sender did not mean.
        let plain = list.first("filename").map { String(decoding: $0, as: UTF8.self) }
        filename = list.first("filename*").flatMap(Self.decodeExtendedValue) ?? plain
    }

    /// Decodes an RFC 8187 `ext-value` in UTF-8 (`UTF-8'lang'%E2%82%AC`); nil for another charset, a broken
    /// percent escape, a raw byte outside `attr-char`, or bytes that are not UTF-8.
    static func decodeExtendedValue(_ value: [UInt8]) -> String? {
        guard let charsetEnd = value.firstIndex(of: MultipartByte.apostrophe),
              let languageEnd = value[(charsetEnd + 1)...].firstIndex(of: MultipartByte.apostrophe),
              String(decoding: value[..<charsetEnd], as: UTF8.self).caseInsensitiveEquals("utf-8") else { return nil }
        var decoded: [UInt8] = []
        var index = languageEnd + 1
        while index < value.count {
            let byte = value[index]
            if byte == MultipartByte.percent {
                guard index + 2 < value.count, let high = HTTPByte.hexValue(value[index + 1]),
                      let low = HTTPByte.hexValue(value[index + 2]) else { return nil }
                decoded.append(UInt8(high << 4 | low))
                index += 3
            } else {
                guard MultipartByte.isAttrChar(byte) else { return nil }
                decoded.append(byte)
                index += 1
            }
        }
        return String(validating: decoded, as: UTF8.self)
    }
}

// MARK: - Parameter lists

/// A header value's type and parameters; names lowercased, values with quotes and escapes removed.
private struct ParameterList: Sendable {
    var type: String
    var parameters: [(name: String, value: [UInt8])] = []

    /// The value of the first parameter so named (lowercase), or nil.
    func first(_ name: String) -> [UInt8]? { parameters.first { $0.name == name }?.value }
}

/// `type *( OWS ";" OWS [ name OWS "=" OWS ( token / quoted-string ) ] )`, as Content-Type and
/// Content-Disposition use it. Looser than RFC 9110 where clients are: OWS around `=`, empty list elements.
private enum ParameterGrammar {
    /// Where in the value the grammar broke.
    struct Fault: Error {
        var index: Int
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(Fault) -> ParameterList {
        var reader = ByteReader(bytes: bytes)
        reader.skipWhitespace()
        let type = reader.take(while: { $0 != HTTPByte.semicolon && !HTTPByte.isWhitespace($0) })
        guard !type.isEmpty else { throw Fault(index: reader.index) }
        var list = ParameterList(type: reader.lowercasedString(type))
        while true {
            reader.skipWhitespace()
            guard let byte = reader.peek else { return list }
            guard byte == HTTPByte.semicolon else { throw Fault(index: reader.index) }
            reader.index += 1
            reader.skipWhitespace()
            guard let next = reader.peek, next != HTTPByte.semicolon else { continue }
            list.parameters.append(try parameter(&reader))
        }
    }

    private static func parameter(_ reader: inout ByteReader) throws(Fault) -> (name: String, value: [UInt8]) {
        let name = reader.take(while: HTTPByte.isToken)
        guard !name.isEmpty else { throw Fault(index: reader.index) }
        reader.skipWhitespace()
        guard reader.peek == MultipartByte.equals else { throw Fault(index: reader.index) }
        reader.index += 1
        reader.skipWhitespace()
        if reader.peek == MultipartByte.quote { return (reader.lowercasedString(name), try quoted(&reader)) }
        let value = reader.take(while: MultipartByte.isBareValueByte)
        guard !value.isEmpty else { throw Fault(index: reader.index) }
        return (reader.lowercasedString(name), Array(UnsafeRawBufferPointer(rebasing: reader.bytes[value])))
    }

    /// A quoted-string from its opening quote; a backslash makes the next byte literal, as RFC 9110 says.
    /// Known shortcoming: HTML's form encoding does not escape `\`, so a browser file name holding one (an old
    /// Windows path) loses it here; keeping such names would need telling the sender apart, which bytes cannot.
    private static func quoted(_ reader: inout ByteReader) throws(Fault) -> [UInt8] {
        reader.index += 1
        var value: [UInt8] = []
        while let byte = reader.peek {
            reader.index += 1
            if byte == MultipartByte.quote { return value }
            if byte == MultipartByte.backslash {
                guard let escaped = reader.peek else { break }
                reader.index += 1
                value.append(escaped)
            } else {
                value.append(byte)
            }
        }
        throw Fault(index: reader.index)
    }
}

/// A cursor over a header value's bytes.
private struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while let byte = peek, HTTPByte.isWhitespace(byte) { index += 1 }
    }

    mutating func take(while predicate: (UInt8) -> Bool) -> Range<Int> {
        let start = index
        while let byte = peek, predicate(byte) { index += 1 }
        return start..<index
    }

    func lowercasedString(_ range: Range<Int>) -> String {
        String(decoding: bytes[range].map(asciiLower), as: UTF8.self)
    }
}
