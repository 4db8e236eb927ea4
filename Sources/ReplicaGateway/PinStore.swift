import COpenSSL
import Foundation

/// Why the PIN could not be set up, read or replaced.
public enum PinStoreError: Error, Equatable, CustomStringConvertible {
    /// A PIN given on the command line or in the environment is not exactly six ASCII digits.
    case invalidFixedPin
    /// The PIN file exists but does not hold six digits (and an optional newline).
    case invalidPinFile(path: String)
    /// A PIN fixed by the operator cannot be regenerated.
    case pinIsFixed
    /// A file-system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// OpenSSL's generator refused to produce random bytes.
    case randomUnavailable

    public var description: String {
        switch self {
        case .invalidFixedPin:
            return "the PIN must be exactly 6 digits (0-9)"
        case .invalidPinFile(let path):
            return "\(path) does not hold a 6-digit PIN; fix or delete it"
        case .pinIsFixed:
            return "the PIN is fixed by --pin or REPLICA_PIN and cannot be regenerated"
        case .io(let operation, let path, let code):
            return "\(operation) \(path): \(String(cString: strerror(code)))"
        case .randomUnavailable:
            return "the system random generator (RAND_bytes) failed"
        }
    }
}

/// The server's 6-digit PIN: fixed by the operator, or random and kept in `<data-dir>/pin` (mode 0600).
///
/// Several processes share the file: `replica-link pin --regenerate` replaces it while the gateway runs,
/// and the gateway sees the new PIN at its next `reloadIfChanged()`. Replacement is atomic (write a temp
/// file, fsync, rename), so a reader sees the old PIN or the new one, never a torn file.
public final class PinStore {
    /// The file's name inside the data directory.
    public static let fileName = "pin"
    /// Digits in a PIN.
    public static let length = 6

    /// The PIN in force.
    public private(set) var pin: String
    /// The PIN came from `--pin` or `REPLICA_PIN` and is never read from or written to the file.
    public let isFixed: Bool
    /// Where the PIN is kept when it is not fixed.
    public let filePath: String
    private var fileIdentity: FileIdentity?

    /// Uses `fixedPin` when given (validated), else reads `<dataDirectory>/pin`, creating it at first start.
    public init(dataDirectory: String, fixedPin: String? = nil) throws {
        filePath = (dataDirectory as NSString).appendingPathComponent(PinStore.fileName)
        if let fixedPin {
            guard PinStore.isValidPin(fixedPin) else { throw PinStoreError.invalidFixedPin }
            pin = fixedPin
            isFixed = true
            return
        }
        isFixed = false
        try PinStore.makeDirectory(dataDirectory)
        if let stored = try PinStore.readFile(filePath) {
            pin = stored.pin
            fileIdentity = stored.identity
        } else {
            pin = try PinStore.randomPin()
            fileIdentity = try PinStore.writeAtomically(pin, to: filePath)
        }
    }

    /// A `URL` flavour of `init(dataDirectory:fixedPin:)`.
    public convenience init(dataDirectory: URL, fixedPin: String? = nil) throws {
        try self.init(dataDirectory: dataDirectory.path, fixedPin: fixedPin)
    }

    /// SHA-256 of the PIN in force, as hex: names the PIN in the login throttle without revealing it.
    public var fingerprint: String { AuthCrypto.sha256Hex(pin) }

    /// Whether `text` is a well-formed PIN: exactly six ASCII digits.
    public static func isValidPin(_ text: String) -> Bool {
        let utf8 = text.utf8
        return utf8.count == length && utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// Compares `candidate` with the PIN in constant time; a candidate of the wrong length is simply false.
    public func matches(_ candidate: String) -> Bool {
        AuthCrypto.constantTimeEquals(Array(candidate.utf8), Array(pin.utf8))
    }

    /// Replaces the PIN with a new random one, written to the file atomically, and returns it.
    @discardableResult
    public func regenerate() throws -> String {
        guard !isFixed else { throw PinStoreError.pinIsFixed }
        let fresh = try PinStore.randomPin()
        fileIdentity = try PinStore.writeAtomically(fresh, to: filePath)
        pin = fresh
        return fresh
    }

    /// Rereads the file if another process replaced it (its inode, size or times changed); true if reloaded.
    ///
    /// Costs one `stat` when nothing changed, so it can run before every PIN check. On an error (the file
    /// removed or garbled) the PIN in memory stays in force and the error is thrown for the caller to log.
    @discardableResult
    public func reloadIfChanged() throws -> Bool {
        guard !isFixed else { return false }
        guard let identity = try PinStore.identity(of: filePath) else {
            throw PinStoreError.io(operation: "stat", path: filePath, errno: ENOENT)
        }
        guard identity != fileIdentity else { return false }
        guard let stored = try PinStore.readFile(filePath) else {
            throw PinStoreError.io(operation: "open", path: filePath, errno: ENOENT)
        }
        pin = stored.pin
        fileIdentity = stored.identity
        return true
    }

    // MARK: Random PINs

    /// A PIN uniform over 000000–999999: 32 random bits, redrawn when they fall in the uneven top slice.
    static func randomPin() throws -> String {
        let range: UInt64 = 1_000_000
        // The largest multiple of `range` that fits in 32 bits; draws at or above it would favour low PINs.
        let limit = (UInt64(1) << 32) / range * range
        while true {
            let bytes = try randomBytes(4)
            let draw = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if draw < limit { return String(draw % range).leftPaddedWithZeros(to: length) }
        }
    }

    private static func randomBytes(_ count: Int) throws -> [UInt8] {
        do { return try AuthCrypto.randomBytes(count) } catch { throw PinStoreError.randomUnavailable }
    }

    // MARK: The file

    /// What `stat` says about the file; a change in any field means another writer replaced it.
    ///
    /// The change time is left out on purpose: the rename that publishes a file bumps it, so the writer's own
    /// fstat before the rename would never match. A replacement always brings a new inode anyway.
    struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modifiedSeconds = Int(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        }
    }

    static func identity(of path: String) throws -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw PinStoreError.io(operation: "stat", path: path, errno: errno)
        }
        return FileIdentity(info)
    }

    /// The PIN and identity of the file, or nil when there is no file.
    static func readFile(_ path: String) throws -> (pin: String, identity: FileIdentity)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw PinStoreError.io(operation: "open", path: path, errno: errno)
        }
        defer { close(fd) }

        // fstat on the descriptor read, so the identity belongs to exactly these bytes even mid-replacement.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PinStoreError.io(operation: "fstat", path: path, errno: errno) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw PinStoreError.io(operation: "read", path: path, errno: errno) }

        let text = String(decoding: buffer[..<count], as: UTF8.self)
        let candidate = text.hasSuffix("\n") ? String(text.dropLast()) : text
        guard isValidPin(candidate) else { throw PinStoreError.invalidPinFile(path: path) }
        return (candidate, FileIdentity(info))
    }

    /// Writes `pin` and a newline to `path` via a 0600 temp file, fsync and rename; returns the new identity.
    static func writeAtomically(_ pin: String, to path: String) throws -> FileIdentity {
        let directory = (path as NSString).deletingLastPathComponent
        // A unique name per writer, so two concurrent regenerations cannot write into the same temp file.
        let unique = "\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let temp = (directory as NSString).appendingPathComponent(".\(fileName).\(unique).tmp")
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PinStoreError.io(operation: "create", path: temp, errno: errno) }

        var renamed = false
        defer { if !renamed { unlink(temp) } }
        let info = try writeAndSync(Array((pin + "\n").utf8), fd: fd, path: temp)
        guard rename(temp, path) == 0 else { throw PinStoreError.io(operation: "rename", path: path, errno: errno) }
        renamed = true
        syncDirectory(directory)
        return FileIdentity(info)
    }

    /// Writes all of `bytes`, forces mode 0600 (whatever the umask), fsyncs and closes; returns the fstat.
    private static func writeAndSync(_ bytes: [UInt8], fd: Int32, path: String) throws -> stat {
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw PinStoreError.io(operation: "fchmod", path: path, errno: errno) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw PinStoreError.io(operation: "write", path: path, errno: written < 0 ? errno : EIO)
        }
        guard fsync(fd) == 0 else { throw PinStoreError.io(operation: "fsync", path: path, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PinStoreError.io(operation: "fstat", path: path, errno: errno) }
        return info
    }

    /// Makes the rename itself durable; a failure only weakens crash safety, so it is not an error.
    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Creates the data directory and any missing parents (mode 0700) unless it exists.
    private static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        let parent = (path as NSString).deletingLastPathComponent
        guard errno == ENOENT, !parent.isEmpty, parent != path else {
            throw PinStoreError.io(operation: "mkdir", path: path, errno: errno)
        }
        try makeDirectory(parent)
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw PinStoreError.io(operation: "mkdir", path: path, errno: errno)
        }
    }
}

extension String {
    fileprivate func leftPaddedWithZeros(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
