import Foundation
import ReplicaCore

/// One slot's log: `worker-<n>.log`, rotated to `.1`, `.2` and `.3` when it would pass its size limit.
///
/// Workers of the same slot append to the same file one after another. Only the writer thread touches the
/// descriptor and the size; `droppedBytes` is guarded by the writer's lock.
final class WorkerLogFile {
    /// Rotated files kept beside the current one.
    static let keptRotations = 3

    let path: String
    /// Bytes a file may hold before the next write goes to a fresh one.
    let limit: UInt64
    fileprivate var descriptor: Int32 = -1
    fileprivate var size: UInt64 = 0
    fileprivate var droppedBytes = 0
    fileprivate var reportedError = false

    init(path: String, limit: UInt64) {
        self.path = path
        self.limit = limit
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Appends `bytes`, rotating first where they would pass the limit. A rotation cuts after the last
    /// newline that fits, so each file starts with a whole line; only a line longer than the limit is split.
    fileprivate func append(_ bytes: ArraySlice<UInt8>) throws {
        var rest = bytes
        while !rest.isEmpty {
            try openIfNeeded()
            let room = limit > size ? Int(limit - size) : 0
            if rest.count <= room { return try write(rest) }
            let fitting = rest.prefix(room)
            if let newline = fitting.lastIndex(of: UInt8(ascii: "\n")) {
                try write(rest[...newline])
                rest = rest[(newline + 1)...]
            } else if size == 0 {
                try write(fitting)
                rest = rest.dropFirst(room)
            }
            try rotate()
        }
    }

    private func write(_ bytes: ArraySlice<UInt8>) throws {
        try bytes.withUnsafeBytes { try FileSystem.writeAll($0, to: descriptor, path: path) }
        size += UInt64(bytes.count)
    }

    private func openIfNeeded() throws {
        guard descriptor < 0 else { return }
        // CLOEXEC: workers spawned later must not hold the gateway's log files open.
        let opened = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard opened >= 0 else { throw FileSystemError(code: errno, operation: "open", path: path) }
        var info = stat()
        size = fstat(opened, &info) == 0 ? UInt64(info.st_size) : 0
        descriptor = opened
    }

    /// `.2` → `.3`, `.1` → `.2`, the current file → `.1`; the next write opens a new current file, which
    /// `tail -F` follows by name.
    private func rotate() throws {
        close(descriptor)
        descriptor = -1
        for generation in stride(from: Self.keptRotations - 1, through: 1, by: -1) {
            rename(path + ".\(generation)", path + ".\(generation + 1)")
        }
        if rename(path, path + ".1") != 0 && errno != ENOENT {
            throw FileSystemError(code: errno, operation: "rename to \(path).1", path: path)
        }
    }
}

/// Appends workers' stderr to their slots' log files on a thread of its own, so the loop never waits for the
/// disk. At most `maximumQueuedBytes` wait; beyond that a worker's output is dropped and a line in its log says
/// how much, since a worker flooding stderr must not grow the gateway's memory.
final class WorkerLogWriter: @unchecked Sendable {
    /// Bytes queued for the disk at most, all files together.
    static let maximumQueuedBytes = 8 << 20

    private let condition = NSCondition()
    private var queue: [(file: WorkerLogFile, bytes: [UInt8])] = []
    private var queuedBytes = 0
    private var stopped = false
    private var started = false
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Queues `bytes` for `file`; starts the writer thread on first use.
    func append<Bytes: Collection>(_ bytes: Bytes, to file: WorkerLogFile) where Bytes.Element == UInt8 {
        guard !bytes.isEmpty else { return }
        condition.lock(); defer { condition.unlock() }
        guard !stopped else { return }
        guard queuedBytes + bytes.count <= Self.maximumQueuedBytes else {
            file.droppedBytes += bytes.count
            return
        }
        if file.droppedBytes > 0 {
            let notice = "\n[replica-link dropped \(file.droppedBytes) bytes of this worker's stderr: the disk could "
                + "not keep up]\n"
            enqueue(Array(notice.utf8), to: file)
            file.droppedBytes = 0
        }
        enqueue(Array(bytes), to: file)
        if !started { startThread() }
    }

    /// Appends one line the gateway writes itself (a worker's start and end), stamped with the time.
    func note(_ text: String, to file: WorkerLogFile) {
        append(Array("\(Self.timestamp()) replica-link: \(text)\n".utf8), to: file)
    }

    /// Lets the thread write what is queued and end; later appends are dropped. Does not wait for the disk.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func enqueue(_ bytes: [UInt8], to file: WorkerLogFile) {
        queue.append((file, bytes))
        queuedBytes += bytes.count
        if queue.count == 1 { condition.signal() }
    }

    private func startThread() {
        started = true
        let thread = Thread { [self] in drain() }
        thread.name = "worker-log-writer"
        thread.start()
    }

    private func drain() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            let batch = queue
            let finished = stopped
            queue = []
            condition.unlock()
            for (file, bytes) in batch { write(bytes, to: file) }
            // Counted until written, not until taken: the batch holds the memory while the disk is slow.
            condition.lock()
            queuedBytes -= batch.reduce(0) { $0 + $1.bytes.count }
            condition.unlock()
            if finished { return }
        }
    }

    /// Writes one chunk; a file that cannot be written is reported once, not once per chunk.
    private func write(_ bytes: [UInt8], to file: WorkerLogFile) {
        do {
            try file.append(bytes[...])
            file.reportedError = false
        } catch {
            guard !file.reportedError else { return }
            file.reportedError = true
            logger.error("cannot write a worker's log", ["log.path": file.path, "error": "\(error)"])
        }
    }

    private static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
