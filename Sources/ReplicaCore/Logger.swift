import Foundation

/// Log levels, least to most severe.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    public var name: String { String(describing: self) }

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = level
    }
}

/// Receives formatted log lines; the gateway's sink writes to stderr and a file.
public protocol LogSink: AnyObject, Sendable {
    func write(line: String, level: LogLevel)
}

/// A logger in swift-log's spirit: a level, a constant message, metadata under dotted keys.
/// Metadata values are written as given: callers must pass redacted values for secrets
/// (see `redactSecrets(inTarget:)`).
public struct Logger: Sendable {
    /// Metadata as ordered pairs: a handful of fields per line, where a dictionary's hashing costs more than it
    /// saves.
    public typealias Metadata = KeyValuePairs<String, String>

    public var minimumLevel: LogLevel
    public private(set) var metadata: [(key: String, value: String)] = []
    private let sink: LogSink?

    public init(sink: LogSink?, minimumLevel: LogLevel = .info) {
        self.sink = sink
        self.minimumLevel = minimumLevel
    }

    /// A logger that drops everything.
    public static let silent = Logger(sink: nil, minimumLevel: .critical)

    /// A copy that adds (or replaces) one field on every line.
    public func with(_ key: String, _ value: String) -> Logger {
        var copy = self
        copy.metadata.removeAll { $0.key == key }
        copy.metadata.append((key, value))
        return copy
    }

    public func isEnabled(_ level: LogLevel) -> Bool { sink != nil && level >= minimumLevel }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String,
                    _ extra: @autoclosure () -> Metadata = [:]) {
        guard let sink, level >= minimumLevel else { return }
        var fields = metadata
        for (key, value) in extra() {
            if let index = fields.firstIndex(where: { $0.key == key }) {
                fields[index].value = value
            } else {
                fields.append((key, value))
            }
        }
        sink.write(line: Logger.format(level: level, message: message(), fields: fields, time: Date()), level: level)
    }

    public func trace(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.trace, message(), metadata())
    }
    public func debug(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.debug, message(), metadata())
    }
    public func info(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.info, message(), metadata())
    }
    public func notice(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.notice, message(), metadata())
    }
    public func warning(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.warning, message(), metadata())
    }
    public func error(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.error, message(), metadata())
    }
    public func critical(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.critical, message(), metadata())
    }

    /// One line: `2026-12-03T11:31:23.123Z info message key=value key2="quoted value"`, keys sorted.
    public static func format(level: LogLevel, message: String, metadata: Metadata, time: Date) -> String {
        format(level: level, message: message, fields: metadata.map { ($0.key, $0.value) }, time: time)
    }

    static func format(level: LogLevel, message: String, fields: [(key: String, value: String)],
                       time: Date) -> String {
        var line = timestamp(time) + " " + level.name + " " + quoteIfNeeded(message)
        for field in fields.sorted(by: { $0.key < $1.key }) {
            line += " " + field.key + "=" + quoteIfNeeded(field.value)
        }
        return line
    }

    public static func timestamp(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var t = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&t, &parts)
        // Built by hand: this runs for every access-log line, and String(format:) costs several times more.
        var out = ""
        out.reserveCapacity(24)
        out += padded(Int(parts.tm_year) + 1900, 4) + "-" + padded(Int(parts.tm_mon) + 1, 2) + "-"
        out += padded(Int(parts.tm_mday), 2) + "T" + padded(Int(parts.tm_hour), 2) + ":"
        out += padded(Int(parts.tm_min), 2) + ":" + padded(Int(parts.tm_sec), 2) + "."
        out += padded(Int(millis % 1000), 3) + "Z"
        return out
    }

    private static func padded(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    static func quoteIfNeeded(_ value: String) -> String {
        let plain = !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x3D }
        if plain { return value }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\x%02x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// The request target with the value of every `token=` query parameter replaced, for logs.
public func redactSecrets(inTarget target: String) -> String {
    guard let q = target.firstIndex(of: "?") else { return target }
    let query = target[target.index(after: q)...]
    let parts = query.split(separator: "&", omittingEmptySubsequences: false).map { part -> String in
        let name = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let decoded = String(name).removingPercentEncoding ?? String(name)
        return decoded.lowercased() == "token" ? "\(name)=REDACTED" : String(part)
    }
    return String(target[...q]) + parts.joined(separator: "&")
}
