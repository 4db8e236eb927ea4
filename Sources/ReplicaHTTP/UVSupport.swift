import CLibUV
import Glibc

/// A libuv failure: the negative code, its name and message, and the operation that returned it.
public struct UVError: Error, Equatable, CustomStringConvertible {
    public var code: Int32
    public var operation: String

    public init(_ code: Int32, _ operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The code's symbolic name, such as `EADDRINUSE`.
    public var name: String { String(cString: uv_err_name(code)) }

    public var message: String { String(cString: uv_strerror(code)) }

    public var description: String { "\(operation): \(name) (\(message))" }

    public static let addressInUse = -Int32(EADDRINUSE)
}

/// Throws a `UVError` when a libuv call returned a negative status.
@discardableResult
func uvCheck(_ status: Int32, _ operation: @autoclosure () -> String) throws(UVError) -> Int32 {
    if status < 0 { throw UVError(status, operation()) }
    return status
}

// libuv's handle types share a common prefix; these casts view one as another, as its C API expects.
@inline(__always) func asHandle<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
}

@inline(__always) func asStream<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
    UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_stream_t.self)
}

/// Closes a handle and frees its memory once libuv is done with it; `data` must already be released.
func closeAndFree<T>(_ p: UnsafeMutablePointer<T>) {
    let handle = asHandle(p)
    if uv_is_closing(handle) != 0 { return }
    uv_close(handle) { handle in
        handle?.deallocate()
    }
}

/// The text form of a socket address ("127.0.0.1", "::1") and its port.
func describeAddress(_ storage: UnsafePointer<sockaddr_storage>) -> (host: String, port: Int) {
    var name = [CChar](repeating: 0, count: 64)
    let family = Int32(storage.pointee.ss_family)
    return storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { addr -> (String, Int) in
        if family == AF_INET6 {
            return addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a6 in
                _ = uv_ip6_name(a6, &name, name.count)
                return (String(cString: name), Int(UInt16(bigEndian: a6.pointee.sin6_port)))
            }
        }
        return addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a4 in
            _ = uv_ip4_name(a4, &name, name.count)
            return (String(cString: name), Int(UInt16(bigEndian: a4.pointee.sin_port)))
        }
    }
}

/// Parses a numeric IPv4 or IPv6 address and port into a socket address.
func makeSocketAddress(host: String, port: Int) throws(UVError) -> sockaddr_storage {
    var storage = sockaddr_storage()
    let status: Int32 = withUnsafeMutablePointer(to: &storage) { p in
        if host.contains(":") {
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(host, Int32(port), $0) }
        }
        return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
    }
    try uvCheck(status, "parse address \(host)")
    return storage
}

/// Raises the soft limit on open files to the hard limit, since every connection holds one.
public func raiseOpenFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
    return Int(limit.rlim_cur)
}

/// The machine's IPv4 and IPv6 addresses on interfaces that are up, loopback ones last; for telling people
/// which URL to use.
public func localInterfaceAddresses(includeIPv6: Bool = false) -> [String] {
    var interfaces: UnsafeMutablePointer<uv_interface_address_t>?
    var count: Int32 = 0
    guard uv_interface_addresses(&interfaces, &count) == 0, let interfaces else { return [] }
    defer { uv_free_interface_addresses(interfaces, count) }
    var external: [String] = [], loopback: [String] = []
    for index in 0..<Int(count) {
        let entry = interfaces[index]
        var name = [CChar](repeating: 0, count: 64)
        var entryAddress = entry.address
        let family = Int32(entryAddress.address4.sin_family)
        if family == AF_INET {
            _ = uv_ip4_name(&entryAddress.address4, &name, name.count)
        } else if family == AF_INET6 && includeIPv6 {
            _ = uv_ip6_name(&entryAddress.address6, &name, name.count)
        } else {
            continue
        }
        let text = String(cString: name)
        if entry.is_internal != 0 { loopback.append(text) } else { external.append(text) }
    }
    return external + loopback
}
