import Foundation
import ReplicaCore

/// Writes log lines to stderr and to a file without blocking the event loop: lines are queued and a background
/// thread writes them out, at once for warnings and worse, otherwise within `flushInterval`.
public final class LogFileSink: LogSink, @unchecked Sendable {
    private let condition = NSCondition()
    private var queued: [String] = []
    private var urgent = false
    private var stopped = false
    private let file: FileHandle?
    private let toStandardError: Bool
    private var thread: Thread?
    /// Seconds a routine line may wait before it is written.
    private let flushInterval: Double

    /// Opens (appending, creating with mode 0600) the file at `path`; nil writes to stderr only.
    public init(path: String?, toStandardError: Bool = true, flushInterval: Double = 0.2) throws {
        self.toStandardError = toStandardError
        self.flushInterval = flushInterval
        if let path {
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw OptionsError("cannot open log file \(path): \(String(cString: strerror(errno)))")
            }
            file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        } else {
            file = nil
        }
        let thread = Thread { [unowned self] in self.drain() }
        thread.name = "log-writer"
        self.thread = thread
        thread.start()
    }

    public func write(line: String, level: LogLevel) {
        condition.lock()
        queued.append(line)
        // Wake the writer only when it has something new to wait for: a signal per line would cost a context
        // switch per request.
        let wake = queued.count == 1 || level >= .warning && !urgent
        if level >= .warning { urgent = true }
        if wake { condition.signal() }
        condition.unlock()
    }

    /// Writes what is queued and stops the writer thread; later lines are dropped. Safe to call twice.
    public func close() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
        while thread?.isFinished == false { usleep(1000) }
    }

    private func drain() {
        while true {
            condition.lock()
            while queued.isEmpty && !stopped {
                condition.wait()
            }
            let deadline = Date(timeIntervalSinceNow: flushInterval)
            while !urgent && !stopped && condition.wait(until: deadline) {}
            let lines = queued
            let finished = stopped
            queued = []
            urgent = false
            condition.unlock()
            if !lines.isEmpty { emit(lines) }
            if finished { return }
        }
    }

    private func emit(_ lines: [String]) {
        let text = Data((lines.joined(separator: "\n") + "\n").utf8)
        if toStandardError { FileHandle.standardError.write(text) }
        file?.write(text)
    }
}
