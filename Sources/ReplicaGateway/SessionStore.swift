import COpenSSL
import Foundation
import ReplicaCore

/// Why a session could not be created.
public enum SessionStoreError: Error, Equatable, CustomStringConvertible {
    /// OpenSSL's generator refused to produce random bytes (not seeded, or failed).
    case randomUnavailable

    public var description: String {
        switch self {
        case .randomUnavailable: return "the system random generator (RAND_bytes) failed"
        }
    }
}

/// Bearer tokens: issued as random UUIDs, stored only as SHA-256 hashes, valid for a fixed lifetime.
///
/// Validation answers from an in-memory copy of the `sessions` table, loaded at init and kept in step on
/// every change, so an authenticated request costs a hash and a dictionary lookup, not a query. The table
/// stays the truth across restarts; sessions are only ever created by this process, so the copy cannot miss
/// one. Like `Database`, use from one thread.
public final class SessionStore {
    /// One session as held in memory: the stored hash and when it stops being valid.
    private struct CachedSession {
        let tokenHash: [UInt8]
        /// Seconds since the Unix epoch.
        let expiresAt: Double
    }

    /// How long a token is valid after creation, in seconds; there is no sliding renewal.
    public let lifetime: Double
    private let database: Database
    private let clock: WallClock
    private var sessionsByHash: [[UInt8]: CachedSession] = [:]
    private var lastPurge: Double

    /// Seconds between opportunistic purges done while creating sessions.
    static let purgeInterval: Double = 3600

    /// Loads the unexpired sessions from `database`; `lifetime` is in seconds, default 24 h.
    public init(database: Database, clock: WallClock, lifetime: Double = 24 * 3600) throws {
        precondition(lifetime.isFinite && lifetime > 0, "session lifetime must be a positive number of seconds")
        self.database = database
        self.clock = clock
        self.lifetime = lifetime
        lastPurge = clock.now
        try purgeExpired()
        try loadSessions()
    }

    private func loadSessions() throws {
        try database.forEachRow("SELECT token_hash, expires_at FROM sessions") { row in
            guard let hash = row.bytes(at: 0) else { return }
            sessionsByHash[hash] = CachedSession(tokenHash: hash, expiresAt: row.double(at: 1))
        }
    }

    /// Sessions currently held (unexpired ones, plus expired ones not purged yet).
    public var count: Int { sessionsByHash.count }

    /// Issues a new token (a lower-case UUID v4 string) valid for `lifetime` seconds from now.
    public func createSession() throws -> String {
        let now = clock.now
        if now - lastPurge >= SessionStore.purgeInterval { try purgeExpired() }

        let token = try SessionStore.newToken()
        let hash = AuthCrypto.sha256(Array(token.utf8))
        let expiry = now + lifetime
        try database.run("INSERT INTO sessions (token_hash, created_at, expires_at) VALUES (?, ?, ?)",
                         [.blob(hash), .real(now), .real(expiry)])
        sessionsByHash[hash] = CachedSession(tokenHash: hash, expiresAt: expiry)
        return token
    }

    /// True only for a well-formed token of a stored, unexpired session.
    public func validate(_ token: String) -> Bool {
        // Malformed input is refused before hashing, so junk costs next to nothing.
        guard SessionStore.isWellFormed(token) else { return false }
        let hash = AuthCrypto.sha256(Array(token.utf8))
        // The lookup is keyed by the hash, never the token; the decisive comparison is constant-time.
        guard let session = sessionsByHash[hash],
              AuthCrypto.constantTimeEquals(session.tokenHash, hash) else { return false }
        guard clock.now < session.expiresAt else {
            forget(hash)
            return false
        }
        return true
    }

    /// Deletes every expired session from the table and the in-memory copy; returns how many went.
    @discardableResult
    public func purgeExpired() throws -> Int {
        let now = clock.now
        try database.run("DELETE FROM sessions WHERE expires_at <= ?", [.real(now)])
        let removed = database.changes
        sessionsByHash = sessionsByHash.filter { $0.value.expiresAt > now }
        lastPurge = now
        return removed
    }

    private func forget(_ hash: [UInt8]) {
        sessionsByHash[hash] = nil
        // A failed delete is harmless: the row is expired, is ignored by validate and goes at the next purge.
        try? database.run("DELETE FROM sessions WHERE token_hash = ?", [.blob(hash)])
    }

    // MARK: Token format

    /// Sixteen random bytes as a UUID v4: version nibble 4, variant bits 10, leaving 122 random bits.
    static func newToken() throws -> String {
        var bytes = try AuthCrypto.randomBytes(16)
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = AuthCrypto.hex(bytes)
        let groups = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { range in
            hex.dropFirst(range.lowerBound).prefix(range.count)
        }
        return groups.joined(separator: "-")
    }

    /// The shape of an issued token: 36 characters, lower-case hex in 8-4-4-4-12 groups.
    public static func isWellFormed(_ token: String) -> Bool {
        let utf8 = token.utf8
        guard utf8.count == 36 else { return false }
        for (offset, byte) in utf8.enumerated() {
            let isDash = offset == 8 || offset == 13 || offset == 18 || offset == 23
            let ok = isDash ? byte == UInt8(ascii: "-") : AuthCrypto.isLowerHexDigit(byte)
            guard ok else { return false }
        }
        return true
    }
}

/// The few OpenSSL primitives the auth stores share.
enum AuthCrypto {
    /// `count` bytes from OpenSSL's CSPRNG.
    static func randomBytes(_ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard ok == 1 else { throw SessionStoreError.randomUnavailable }
        return bytes
    }

    /// The 32-byte SHA-256 digest of `bytes`.
    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            digest.withUnsafeMutableBufferPointer { output in
                EVP_Digest(input.baseAddress, input.count, output.baseAddress, &length, EVP_sha256(), nil)
            }
        }
        // SHA-256 from the default provider cannot fail short of memory exhaustion or a broken install.
        precondition(ok == 1 && length == SHA256_DIGEST_LENGTH, "EVP_Digest(SHA-256) failed")
        return digest
    }

    /// SHA-256 of `text` as 64 lower-case hex digits.
    static func sha256Hex(_ text: String) -> String {
        hex(sha256(Array(text.utf8)))
    }

    /// Bytes as lower-case hex, two digits each.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Equality of two byte strings in time that depends only on their length (false when lengths differ).
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, x.count) == 0 }
        }
    }

    static func isLowerHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }
}
