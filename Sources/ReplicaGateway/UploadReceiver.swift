import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaImageIO

/// How much one upload may carry; each over-limit answer is a 413 that names the limit.
public struct UploadLimits: Equatable, Sendable {
    /// Largest single file, in bytes; default 4 GiB.
    public var maxFileBytes: UInt64 = 4 << 30
    /// Most files in one request; default 10,000.
    public var maxFiles = 10_000
    /// Largest request body, in bytes; default 64 GiB.
    public var maxRequestBytes: UInt64 = 64 << 30
    /// Largest value of a plain form field such as `name`, in bytes; default 64 KiB.
    public var maxFieldBytes = 64 * 1024

    public init() {}

    public func validate() throws {
        guard maxFileBytes >= 1 else { throw OptionsError("the file size limit must be at least 1 byte") }
        guard (1...1_000_000).contains(maxFiles) else {
            throw OptionsError("the file count limit must be 1–1000000")
        }
        guard maxRequestBytes >= 1 else { throw OptionsError("the request size limit must be at least 1 byte") }
        guard (1...(16 << 20)).contains(maxFieldBytes) else {
            throw OptionsError("the form field limit must be 1 B–16 MiB")
        }
    }
}

/// One photo that arrived in full and is on disk in the upload's staging folder.
struct StagedImage {
    var record: ImageRecord
    var path: String
}

/// What a finished upload holds: the plain fields (first value of each name), the photos, and the names
/// of files left out because their format is not one the API takes.
struct ReceivedUpload {
    var fields: [String: String]
    var images: [StagedImage]
    var skipped: [String]
    /// `<projects>/.staging/<id>`, whose `images/` holds the photos; removed by whoever finishes the upload.
    var directory: String
}

/// Receives one `multipart/form-data` upload into a staging folder as it arrives.
///
/// Photos are written on the thread pool in pieces of about a megabyte while the next piece arrives; the
/// socket is paused when a piece is ready before the previous one is written, so the gateway holds at most
/// two pieces and one socket read per upload, whatever the size. Each photo's CRC-32 is
/// computed as it is written, for the ZIP download. The first bytes of each file decide whether it is a photo
/// at all; with `skipUnsupported` such files are left out (adding images), otherwise they fail the upload
/// (creating a project). Whatever ends the upload early (a limit, a malformed body, the client going away)
/// removes the staging folder.
final class UploadReceiver {
    private let exchange: HTTPExchange
    private let pool: WorkPool
    private let limits: UploadLimits
    private let skipUnsupported: Bool
    private let directory: String
    private let completion: (Result<ReceivedUpload, APIError>) -> Void
    private var parser: MultipartParser

    private var fields: [String: String] = [:]
    private var images: [StagedFile] = []
    private var skipped: [String] = []
    private var usedNames = Set<String>()
    private var bodyBytes: UInt64 = 0
    private var finished = false

    /// The part being received.
    private enum Part {
        case none
        case ignored
        case field(name: String, value: [UInt8])
        /// A file whose first bytes are still being gathered to tell its format.
        case sniffing(name: String, bytes: [UInt8])
        case file(StagedFile)
    }
    private var part = Part.none

    /// Bytes a format is told from.
    private static let sniffBytes = 16
    /// Bytes gathered before a write is queued.
    private static let writePiece = 1 << 20

    /// Work for the pool, run in order, one batch at a time (`drain`).
    private var queued: [() throws -> Void] = []
    private var running = false
    private var whenDrained: (() -> Void)?

    init?(exchange: HTTPExchange, pool: WorkPool, library: ProjectLibrary, limits: UploadLimits,
          skipUnsupported: Bool, completion: @escaping (Result<ReceivedUpload, APIError>) -> Void) {
        guard let type = exchange.head.headers["Content-Type"],
              let boundary = MultipartParser.boundary(fromContentType: type) else { return nil }
        self.exchange = exchange
        self.pool = pool
        self.limits = limits
        self.skipUnsupported = skipUnsupported
        self.completion = completion
        directory = library.stagingDirectory + "/" + UUID().uuidString.lowercased()
        var multipartLimits = MultipartLimits()
        multipartLimits.maxParts = limits.maxFiles + 1000
        parser = MultipartParser(boundary: boundary, limits: multipartLimits)
    }

    /// Makes the staging folder, then reads the body.
    func start() {
        if case .length(let length) = exchange.head.framing, length > limits.maxRequestBytes {
            return fail(.tooLarge("Request body too large (limit \(limits.maxRequestBytes) bytes)"))
        }
        let directory = self.directory
        let staging = (directory as NSString).deletingLastPathComponent
        pool.run(throwing: {
            try FileSystem.ensureDirectory(staging)
            try FileSystem.makeDirectory(directory, mode: 0o700)
            try FileSystem.makeDirectory(directory + "/images", mode: 0o755)
        }, completion: { [self] result in
            if case .failure(let error) = result {
                exchange.logger.error("cannot make a staging folder", ["error": "\(error)"])
                return fail(APIError(.internalServerError, "Failed to create project folder"))
            }
            // The exchange keeps the receiver alive through these until it ends and drops them.
            exchange.onAbort = { [self] in fail(nil) }
            exchange.readBody({ [self] chunk in received(chunk) }, end: { [self] in bodyEnded() })
        })
    }

    // MARK: Body

    private func received(_ chunk: UnsafeRawBufferPointer) {
        guard !finished else { return }
        bodyBytes += UInt64(chunk.count)
        guard bodyBytes <= limits.maxRequestBytes else {
            return fail(.tooLarge("Request body too large (limit \(limits.maxRequestBytes) bytes)"))
        }
        do {
            try parser.feed(chunk) { try handle($0) }
        } catch let error as APIError {
            return fail(error)
        } catch let error as MultipartError {
            return fail(APIError(.badRequest, "Invalid multipart body: \(error.reason)"))
        } catch {
            return fail(APIError(.badRequest, "Invalid multipart body"))
        }
        drain()
    }

    private func bodyEnded() {
        guard !finished else { return }
        do {
            try parser.finish()
        } catch {
            return fail(APIError(.badRequest, "Invalid multipart body: \(error.reason)"))
        }
        queued.append { [directory] in try FileSystem.syncDirectory(directory + "/images") }
        whenDrained = { [self] in
            finished = true
            exchange.onAbort = nil
            let staged = images.map { StagedImage(record: $0.record, path: $0.path) }
            completion(.success(ReceivedUpload(fields: fields, images: staged, skipped: skipped,
                                               directory: directory)))
        }
        drain()
    }

    // MARK: Parts

    private func handle(_ event: MultipartEvent) throws {
        switch event {
        case .partBegin(let head):
            try begin(head)
        case .partData(let bytes):
            try append(bytes)
        case .partEnd:
            try end()
        case .end:
            break
        }
    }

    private func begin(_ head: MultipartPartHead) throws {
        if let filename = head.filename {
            // A form's empty file input sends a part with an empty file name and no content.
            guard !filename.isEmpty else { part = .ignored; return }
            guard images.count + skipped.count < limits.maxFiles else {
                throw APIError.tooLarge("Too many files (limit \(limits.maxFiles))")
            }
            guard let name = ProjectNames.safeFileName(filename) else {
                throw APIError(.badRequest, "Invalid file name: \(filename)")
            }
            part = .sniffing(name: name, bytes: [])
        } else if let name = head.name, fields[name] == nil {
            part = .field(name: name, value: [])
        } else {
            part = .ignored
        }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        switch part {
        case .none, .ignored:
            break
        case .field(let name, var value):
            guard value.count + bytes.count <= limits.maxFieldBytes else {
                throw APIError.tooLarge("Form field \(name) too large (limit \(limits.maxFieldBytes) bytes)")
            }
            value.append(contentsOf: bytes)
            part = .field(name: name, value: value)
        case .sniffing(let name, var head):
            head.append(contentsOf: bytes)
            if head.count >= UploadReceiver.sniffBytes {
                try startFile(name: name, head: head)
            } else {
                part = .sniffing(name: name, bytes: head)
            }
        case .file(let file):
            try write(bytes, to: file)
        }
    }

    private func end() throws {
        switch part {
        case .none, .ignored:
            break
        case .field(let name, let value):
            fields[name] = String(decoding: value, as: UTF8.self)
        case .sniffing(let name, let head):
            try startFile(name: name, head: head)
            try end()
            return
        case .file(let file):
            file.flush()
            queued.append { try file.close() }
            images.append(file)
        }
        part = .none
    }

    /// Decides from the first bytes whether the file is a photo and, if so, opens it in staging.
    private func startFile(name: String, head: [UInt8]) throws {
        let format = ImageFormatDetection.detect(head)
        guard let format, let named = ProjectNames.fileName(name, for: format) else {
            guard skipUnsupported else { throw APIError(.badRequest, "Unsupported image format: \(name)") }
            skipped.append(name)
            part = .ignored
            return
        }
        let unique = ProjectNames.unique(named) { usedNames.contains($0) }
        usedNames.insert(unique)
        let file = StagedFile(fileName: unique, path: directory + "/images/" + unique)
        queued.append { try file.open() }
        part = .file(file)
        try head.withUnsafeBytes { try write($0, to: file) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, to file: StagedFile) throws {
        guard file.received + UInt64(bytes.count) <= limits.maxFileBytes else {
            throw APIError.tooLarge("File too large: \(file.fileName) (limit \(limits.maxFileBytes) bytes)")
        }
        file.buffer.append(contentsOf: bytes)
        file.received += UInt64(bytes.count)
        if file.buffer.count >= UploadReceiver.writePiece {
            file.flush()
            queued.append { try file.writeQueued() }
        }
    }

    // MARK: Disk

    /// Runs what the parts queued on the pool, one batch at a time, while the body goes on arriving: the
    /// socket is paused only when a second batch is ready before the first is written, so receiving and
    /// writing overlap and at most two pieces per upload are held. `whenDrained` runs once all is written.
    private func drain() {
        guard !running else {
            if !queued.isEmpty { exchange.pauseBody() }
            return
        }
        guard !queued.isEmpty else {
            let next = whenDrained
            whenDrained = nil
            next?()
            return
        }
        let work = queued
        queued = []
        running = true
        pool.run(throwing: { for step in work { try step() } }, completion: { [self] result in
            running = false
            if case .failure(let error) = result {
                exchange.logger.error("upload write failed", ["error": "\(error)"])
                let full = (error as? FileSystemError)?.outOfSpace == true
                fail(APIError(.internalServerError, full ? "Not enough free disk space to store the uploaded photos"
                                                          : "Failed to store uploaded file"))
            }
            // An upload that failed while this ran cleans up now that nothing of it is in flight.
            guard !finished else { return cleanUp() }
            exchange.resumeBody()
            drain()
        })
    }

    /// Ends the upload with an answer (nil when the client is gone) and removes what it stored.
    private func fail(_ error: APIError?) {
        guard !finished else { return }
        finished = true
        exchange.onAbort = nil
        if let error { completion(.failure(error)) }
        if !running { cleanUp() }
    }

    private func cleanUp() {
        var open = images
        if case .file(let file) = part { open.append(file) }
        let directory = self.directory
        queued = []
        pool.run({
            for file in open { file.abandon() }
            try? FileSystem.removeTree(directory)
        }, completion: { _ in })
    }
}

/// A file being written in staging. Its methods other than `flush` run on the pool, one at a time.
final class StagedFile {
    let fileName: String
    let path: String
    /// Bytes received for it so far (written or waiting in `buffer`).
    var received: UInt64 = 0
    /// Bytes gathered on the loop thread, not yet handed to a write.
    var buffer: [UInt8] = []
    private var handedOver: [[UInt8]] = []
    private let lock = NSLock()
    private var descriptor: Int32 = -1
    private var crc = CRC32()
    private var written: UInt64 = 0
    private(set) var record: ImageRecord

    init(fileName: String, path: String) {
        self.fileName = fileName
        self.path = path
        record = ImageRecord(fileName: fileName, size: 0, crc32: 0, modifiedNanoseconds: 0)
    }

    /// Hands the gathered bytes to the next write (loop thread).
    func flush() {
        guard !buffer.isEmpty else { return }
        lock.lock()
        handedOver.append(buffer)
        lock.unlock()
        buffer = []
    }

    func open() throws {
        descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileSystemError(code: errno, operation: "create", path: path) }
    }

    /// Writes everything handed over so far, updating the CRC.
    func writeQueued() throws {
        lock.lock()
        let pieces = handedOver
        handedOver = []
        lock.unlock()
        for piece in pieces {
            try piece.withUnsafeBytes { raw in
                crc.update(raw)
                try FileSystem.writeAll(raw, to: descriptor, path: path)
            }
            written += UInt64(piece.count)
        }
    }

    /// Writes the rest, flushes the file to the disk and records its size, CRC and mtime.
    func close() throws {
        try writeQueued()
        guard fsync(descriptor) == 0 else { throw FileSystemError(code: errno, operation: "fsync", path: path) }
        Glibc.close(descriptor)
        descriptor = -1
        let status = try FileSystem.status(path)
        record = ImageRecord(fileName: fileName, size: written, crc32: crc.value,
                             modifiedNanoseconds: status?.modifiedNanoseconds ?? 0)
    }

    func abandon() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
    }
}

extension APIError {
    static func tooLarge(_ message: String) -> APIError { APIError(.payloadTooLarge, message) }
}
