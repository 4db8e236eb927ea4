/// Why a request could not be parsed, with the status to answer and where in the stream it went wrong.
public struct HTTPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The status the server should answer with: 400, 414, 431, 501 or 505.
    public var status: HTTPStatus
    /// Short human text naming the broken rule.
    public var reason: String
    /// Byte offset, counted from the connection's first byte, of the byte where the fault was detected.
    public var offset: Int

    /// Creates an error; the parser is the usual source, tests and callers may build their own.
    public init(status: HTTPStatus, reason: String, offset: Int) {
        self.status = status
        self.reason = reason
        self.offset = offset
    }

    /// The status code, the reason and the offset, for logs.
    public var description: String { "\(status.code) \(reason) (at byte \(offset))" }

    static func badRequest(_ reason: String, at offset: Int) -> HTTPParseError {
        HTTPParseError(status: .badRequest, reason: reason, offset: offset)
    }
}

/// Size limits the request parser enforces, each counted per request and afresh for the next one.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Bytes in the request line, CRLF excluded; default 8192; beyond it the answer is 414.
    public var maxRequestLineBytes: Int
    /// Bytes in one header or trailer field line, CRLF excluded; default 8192; beyond it 431.
    public var maxHeaderLineBytes: Int
    /// Bytes of all field lines of the head (or of the trailers) with their CRLFs; default 32768; beyond it 431.
    public var maxHeaderSectionBytes: Int
    /// Field lines in the head (or in the trailers); default 100; beyond it 431.
    public var maxHeaderCount: Int
    /// Bytes in one chunk-size line with its extensions, CRLF excluded; default 4096; beyond it 400.
    public var maxChunkLineBytes: Int

    /// Creates limits; every parameter defaults to the value its property documents.
    public init(maxRequestLineBytes: Int = 8192, maxHeaderLineBytes: Int = 8192,
                maxHeaderSectionBytes: Int = 32768, maxHeaderCount: Int = 100, maxChunkLineBytes: Int = 4096) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderLineBytes = maxHeaderLineBytes
        self.maxHeaderSectionBytes = maxHeaderSectionBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxChunkLineBytes = maxChunkLineBytes
    }

    /// True when every limit is at least one; the parser refuses to start with anything else.
    public var isValid: Bool {
        [maxRequestLineBytes, maxHeaderLineBytes, maxHeaderSectionBytes, maxHeaderCount, maxChunkLineBytes]
            .allSatisfy { $0 >= 1 }
    }
}

/// What the request parser reports while it consumes bytes.
public enum HTTPParserEvent {
    /// The request line and header fields, with framing, keep-alive and expectation decided.
    case head(HTTPRequestHead)
    /// Body bytes, de-chunked; a slice of the caller's input buffer, valid only during the callback.
    case body(UnsafeRawBufferPointer)
    /// The request is complete; the parser stands ready for the next one on the connection.
    case end
}
