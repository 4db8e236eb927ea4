import Foundation
import ReplicaCore

/// A log sink that keeps every line, for assertions.
public final class CapturingSink: LogSink, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []

    public init() {}

    public func write(line: String, level: LogLevel) {
        lock.lock(); stored.append(line); lock.unlock()
    }

    public var lines: [String] {
        lock.lock(); defer { lock.unlock() }
        return stored
    }
}
