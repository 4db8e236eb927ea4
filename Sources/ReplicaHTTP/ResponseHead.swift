import Glibc
import ReplicaCore

/// Serialises a response head; the server adds `Date`, `Server`, framing and `Connection` itself.
struct ResponseHead {
    var status: HTTPStatus
    var headers: HTTPHeaders
    var version: HTTPVersion
    var date: String
    var serverName: String
    var framing: ResponseFraming
    var closeConnection: Bool

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out += "HTTP/1.1 ".utf8
        out += String(status.code).utf8
        out.append(0x20)
        out += status.reason.utf8
        out += "\r\nDate: ".utf8
        out += date.utf8
        out += "\r\nServer: ".utf8
        out += serverName.utf8
        out += "\r\n".utf8
        for (name, value) in headers { line(&out, name, value) }
        switch framing {
        case .length(let n): line(&out, "Content-Length", String(n))
        case .chunked: line(&out, "Transfer-Encoding", "chunked")
        case .untilClose, .noBody: break
        }
        if closeConnection {
            line(&out, "Connection", "close")
        } else if version == .http1_0 {
            // HTTP/1.0 closes by default: staying open must be said.
            line(&out, "Connection", "keep-alive")
        }
        out += "\r\n".utf8
        return out
    }

    private func line(_ out: inout [UInt8], _ name: String, _ value: String) {
        out += name.utf8
        out += ": ".utf8
        out += value.utf8
        out += "\r\n".utf8
    }
}

/// How a response's body is delimited on the wire.
enum ResponseFraming: Equatable {
    case length(UInt64)
    case chunked
    /// HTTP/1.0 with an unknown length: the end of the body is the end of the connection.
    case untilClose
    /// 1xx, 204, 304: a body is not allowed.
    case noBody
}

/// The IMF-fixdate form of a time for the `Date` header ("Thu, 03 Dec 2026 11:31:23 GMT").
func httpDate(_ seconds: time_t) -> String {
    var t = seconds
    var parts = tm()
    gmtime_r(&t, &parts)
    var buffer = [CChar](repeating: 0, count: 40)
    let n = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
