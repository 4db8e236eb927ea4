import Foundation
import Glibc

/// A blocking TCP client that speaks raw bytes, for tests that must control exactly what goes on the wire.
public final class RawClient {
    public let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to `127.0.0.1:port`, optionally from a chosen loopback source address such as 127.0.0.2.
    public init(port: Int, host: String = "127.0.0.1", from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(String(cString: strerror(errno)))") }
        if let source {
            var local = try RawClient.address(source, port: 0)
            let status = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard status == 0 else { Glibc.close(fd); throw ClientError("bind: \(String(cString: strerror(errno)))") }
        }
        var remote = try RawClient.address(host, port: port)
        let status = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ClientError("connect: \(reason)")
        }
    }

    deinit { Glibc.close(fd) }

    private static func address(_ host: String, port: Int) throws -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw ClientError("bad address \(host)") }
        return address
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ClientError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false on end of stream or a reset.
    private func fill(deadline: Date) throws -> Bool {
        let remaining = deadline.timeIntervalSinceNow
        guard remaining > 0 else { throw ClientError("timed out waiting for the server") }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(remaining * 1000) + 1)
        // A signal (SIGCHLD, when the gateway under test runs workers in this process) interrupts the wait.
        if ready < 0 && errno == EINTR { return try fill(deadline: deadline) }
        guard ready > 0 else { throw ClientError("timed out waiting for the server") }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { return try fill(deadline: deadline) }
        guard n > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func readLine(deadline: Date) throws -> String {
        while true {
            if let end = buffer.firstIndex(of: 10) {
                let line = buffer[..<end]
                buffer.removeSubrange(...end)
                return String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
            }
            guard try fill(deadline: deadline) else { throw ClientError("connection closed mid-line") }
        }
    }

    private func readExactly(_ count: Int, deadline: Date) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill(deadline: deadline) else { throw ClientError("connection closed mid-body") }
        }
        let out = Array(buffer[..<count])
        buffer.removeSubrange(..<count)
        return out
    }

    /// Reads one response; `forHead` skips the body. Interim 1xx responses are returned like any other.
    public func readResponse(timeout: Double = 10, forHead: Bool = false) throws -> RawResponse {
        let deadline = Date(timeIntervalSinceNow: timeout)
        let statusLine = try readLine(deadline: deadline)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let code = Int(parts[1]) else { throw ClientError("bad status line '\(statusLine)'") }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine(deadline: deadline)
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw ClientError("bad header '\(line)'") }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...]
                .trimmingCharacters(in: .whitespaces)))
        }
        var response = RawResponse(status: code, headers: headers, body: [])
        if forHead || code < 200 || code == 204 || code == 304 { return response }
        if let length = response.header("Content-Length").flatMap(Int.init) {
            response.body = try readExactly(length, deadline: deadline)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            response.body = try readChunked(deadline: deadline)
        } else {
            while try fill(deadline: deadline) {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    private func readChunked(deadline: Date) throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeLine = try readLine(deadline: deadline)
            guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                throw ClientError("bad chunk size '\(sizeLine)'")
            }
            if size == 0 {
                while try !readLine(deadline: deadline).isEmpty {}
                return body
            }
            body += try readExactly(size, deadline: deadline)
            _ = try readLine(deadline: deadline)
        }
    }

    /// True when the server closes (or resets) the connection within `timeout`; bytes that arrive are kept.
    public func waitForClose(timeout: Double = 10) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        do {
            while try fill(deadline: deadline) {}
            return true
        } catch {
            return false
        }
    }

    /// How the server ended the stream: a clean close (FIN), a reset (RST), or not within the time.
    public enum Ending: Equatable { case closed, reset, open }

    /// Reads (keeping the bytes) until the stream ends, and says how it ended.
    public func ending(timeout: Double = 10) -> Ending {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while deadline.timeIntervalSinceNow > 0 {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(deadline.timeIntervalSinceNow * 1000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return .open }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n > 0 { buffer.append(contentsOf: chunk[0..<n]); continue }
            return n == 0 ? .closed : .reset
        }
        return .open
    }

    /// Everything received and not yet read as a response.
    public var unread: [UInt8] { buffer }
}

/// A parsed response.
public struct RawResponse {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object.
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }
}

public struct ClientError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
