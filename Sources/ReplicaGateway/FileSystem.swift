import CFileSystem
import Foundation
import ReplicaCore

/// A failed file-system call: errno, the call and the path.
struct FileSystemError: Error, CustomStringConvertible {
    let code: Int32
    let operation: String
    let path: String

    var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    var alreadyExists: Bool { code == EEXIST || code == ENOTEMPTY }
    var notFound: Bool { code == ENOENT }
    /// The disk or the user's quota is full.
    var outOfSpace: Bool { code == ENOSPC || code == EDQUOT }
}

/// What `stat` says of a path.
struct FileStatus: Equatable {
    var size: UInt64
    /// Modification time in nanoseconds since 1970.
    var modifiedNanoseconds: Int64
    var isDirectory: Bool
    var isRegularFile: Bool

    var modified: Date { Date(timeIntervalSince1970: Double(modifiedNanoseconds) / 1e9) }
}

/// Blocking file-system calls, for libuv's thread pool and for start-up: never call them from a request
/// handler on the loop thread.
enum FileSystem {
    static func check(_ result: Int32, _ operation: String, _ path: String) throws {
        if result != 0 { throw FileSystemError(code: errno, operation: operation, path: path) }
    }

    /// `lstat`: a symbolic link is reported as neither file nor directory, so links are never followed out of
    /// the data directory. Nil when nothing is there.
    static func status(_ path: String) throws -> FileStatus? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw FileSystemError(code: errno, operation: "lstat", path: path)
        }
        let nanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        let kind = info.st_mode & S_IFMT
        return FileStatus(size: UInt64(info.st_size), modifiedNanoseconds: nanoseconds,
                          isDirectory: kind == S_IFDIR, isRegularFile: kind == S_IFREG)
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
        try check(mkdir(path, mode), "mkdir", path)
    }

    /// Makes the directory unless it is there already.
    static func ensureDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw FileSystemError(code: errno, operation: "mkdir", path: path)
        }
    }

    /// Renames atomically and refuses to replace anything at `destination` (EEXIST).
    static func renameNoReplace(_ source: String, to destination: String) throws {
        try check(replica_rename_noreplace(source, destination), "rename to \(destination)", source)
    }

    /// Removes a file or a whole tree; nothing there is not an error.
    static func removeTree(_ path: String) throws {
        guard try status(path) != nil else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw FileSystemError(code: EIO, operation: "remove (\(error.localizedDescription))", path: path)
        }
    }

    /// The names in a directory, without `.` and `..`, sorted.
    static func list(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            throw FileSystemError(code: errno, operation: "opendir", path: path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Flushes a directory's entries, so a rename or create in it survives a power cut.
    static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileSystemError(code: errno, operation: "open", path: path) }
        defer { close(descriptor) }
        try check(fsync(descriptor), "fsync", path)
    }

    /// The directory exists and this process may create entries in it.
    static func isWritableDirectory(_ path: String) -> Bool {
        guard let status = try? status(path), status.isDirectory else { return false }
        return access(path, W_OK | X_OK) == 0
    }

    /// Reads a whole file's CRC-32 and length, one megabyte at a time.
    static func checksum(_ path: String) throws -> (size: UInt64, crc32: UInt32) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileSystemError(code: errno, operation: "open", path: path) }
        defer { close(descriptor) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var crc = CRC32(), size: UInt64 = 0
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw FileSystemError(code: errno, operation: "read", path: path) }
            if count == 0 { return (size, crc.value) }
            crc.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            size += UInt64(count)
        }
    }

    /// Writes a small file atomically: a temporary name, fsync, rename over the old one.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileSystemError(code: errno, operation: "create", path: temporary) }
        do {
            defer { close(descriptor) }
            try bytes.withUnsafeBytes { try writeAll($0, to: descriptor, path: temporary) }
            try check(fsync(descriptor), "fsync", temporary)
            try check(rename(temporary, path), "rename to \(path)", temporary)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Appends to a file, creating it (mode 0600); one `write` for a line, so lines from one process stay whole.
    static func append(_ bytes: [UInt8], to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw FileSystemError(code: errno, operation: "open", path: path) }
        defer { close(descriptor) }
        try bytes.withUnsafeBytes { try writeAll($0, to: descriptor, path: path) }
    }

    /// Writes every byte, retrying short writes and interruptions.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileSystemError(code: n < 0 ? errno : EIO, operation: "write", path: path) }
            offset += n
        }
    }
}
