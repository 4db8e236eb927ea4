import Foundation
import ReplicaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The worker's log: one line per call on stderr, which the gateway copies to `logs/worker-<n>.log`.
public final class StandardErrorSink: LogSink, @unchecked Sendable {
    private let lock = NSLock()

    public init() {}

    public func write(line: String, level: LogLevel) {
        let bytes = Array((line + "\n").utf8)
        lock.lock(); defer { lock.unlock() }
        writeWhole(bytes, to: STDERR_FILENO)
    }
}

/// Writes all of `bytes`, retrying after signals; gives up silently, since a log nobody reads any more is no
/// reason to stop working.
private func writeWhole(_ bytes: [UInt8], to descriptor: Int32) {
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, bytes.count - written) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return }
        written += count
    }
}
