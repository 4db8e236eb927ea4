/// Matches a method and a path against route patterns such as `/api/projects/:id/images/:filename`.
///
/// Literal segments win over parameters at the same depth, so `/api/projects/:id/images/download` can stand
/// beside `/api/projects/:id/images/:filename`. A path that matches no pattern is "not found"; a path that
/// matches with another method is "method not allowed", with the methods that would have matched.
public struct Router<Handler> {
    private final class Node {
        var literals: [String: Node] = [:]
        var parameter: (name: String, node: Node)?
        var handlers: [HTTPMethod: Handler] = [:]
    }

    private let root = Node()
    /// Patterns without parameters by their path, so that most lookups are one hash instead of a walk.
    private var literalRoutes: [String: Node] = [:]
    /// Every route added, in order: for checking them against the API's contract.
    public private(set) var routes: [(method: HTTPMethod, pattern: String)] = []

    public init() {}

    /// The outcome of a lookup.
    public enum Match {
        case found(Handler, parameters: [String: String])
        case methodNotAllowed(allowed: [HTTPMethod])
        case notFound
    }

    /// Adds a route; a segment starting with `:` captures that segment of the path under its name.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, _ handler: Handler) {
        var node = root
        for segment in Router.segments(of: Substring(pattern)) {
            if segment.hasPrefix(":") {
                let name = String(segment.dropFirst())
                if let existing = node.parameter {
                    precondition(existing.name == name, "conflicting parameter names at \(pattern)")
                } else {
                    node.parameter = (name, Node())
                }
                node = node.parameter!.node
            } else {
                let key = String(segment)
                if node.literals[key] == nil { node.literals[key] = Node() }
                node = node.literals[key]!
            }
        }
        precondition(node.handlers[method] == nil, "route \(method) \(pattern) added twice")
        node.handlers[method] = handler
        routes.append((method, pattern))
        let segments = Router.segments(of: Substring(pattern))
        if !segments.contains(where: { $0.hasPrefix(":") }) {
            literalRoutes["/" + segments.joined(separator: "/")] = node
        }
    }

    /// Looks up a percent-encoded path; captured parameters are percent-decoded. `HEAD` falls back to `GET`.
    public func match(_ method: HTTPMethod, path: Substring) -> Match {
        var parameters: [String: String] = [:]
        // A literal route wins over any pattern with parameters, so finding one settles the lookup. Paths that
        // need decoding or normalising take the walk.
        let literal = Router.isPlain(path) ? literalRoutes[String(path)] : nil
        guard let node = literal ?? find(Router.segments(of: path), in: root, parameters: &parameters) else {
            return .notFound
        }
        if let handler = node.handlers[method] ?? (method == .head ? node.handlers[.get] : nil) {
            return .found(handler, parameters: parameters)
        }
        var allowed = Array(node.handlers.keys)
        if allowed.contains(.get) { allowed.append(.head) }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed.sorted { $0.rawValue < $1.rawValue })
    }

    private func find(_ segments: ArraySlice<Substring>, in node: Node,
                      parameters: inout [String: String]) -> Node? {
        guard let first = segments.first else { return node.handlers.isEmpty ? nil : node }
        let rest = segments.dropFirst()
        if let decoded = percentDecode(first), let next = node.literals[decoded],
           let found = find(rest, in: next, parameters: &parameters) {
            return found
        }
        if let (name, next) = node.parameter, let value = percentDecode(first), !value.isEmpty {
            var attempt = parameters
            attempt[name] = value
            if let found = find(rest, in: next, parameters: &attempt) {
                parameters = attempt
                return found
            }
        }
        return nil
    }

    /// No escapes and no empty segments: the path is already in the form `literalRoutes` is keyed by.
    private static func isPlain(_ path: Substring) -> Bool {
        var previous: UInt8 = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "%") || byte == UInt8(ascii: "/") && previous == byte { return false }
            previous = byte
        }
        return true
    }

    private static func segments(of path: Substring) -> ArraySlice<Substring> {
        ArraySlice(path.split(separator: "/", omittingEmptySubsequences: true))
    }
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+` in paths); nil for a broken escape or invalid UTF-8.
public func percentDecode<S: StringProtocol>(_ text: S) -> String? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count)
    var iterator = text.utf8.makeIterator()
    while let byte = iterator.next() {
        guard byte == UInt8(ascii: "%") else {
            bytes.append(byte)
            continue
        }
        guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
            return nil
        }
        bytes.append(high << 4 | low)
    }
    return String(validating: bytes, as: UTF8.self)
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Splits a query string into decoded name/value pairs (`+` means a space here, as in HTML forms).
public func parseQuery(_ query: Substring) -> [(name: String, value: String)] {
    query.split(separator: "&").compactMap { part in
        let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let decode = { (s: Substring) in percentDecode(String(s.map { $0 == "+" ? " " : $0 })) }
        guard let name = decode(pieces[0]) else { return nil }
        let value = pieces.count > 1 ? decode(pieces[1]) : ""
        return value.map { (name, $0) }
    }
}
