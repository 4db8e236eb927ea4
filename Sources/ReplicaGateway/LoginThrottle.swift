import Foundation
import ReplicaCore

/// How hard PIN guessing is throttled, per client and for the server as a whole.
public struct LoginThrottlePolicy: Sendable, Equatable {
    /// Wrong PINs an address may send before it is delayed, a count; default 3.
    public var freeFailures: Int = 3
    /// Block after the first failure past the free ones, in seconds; doubles with each further one; default 1.
    public var baseDelay: Double = 1
    /// Longest block of one address, in seconds; default 900.
    public var maxDelay: Double = 900
    /// Wrong PINs from all clients together, against one PIN, that stop PIN logins; default 100.
    /// With 10^6 PINs that bounds any attacker's chance to 100 in a million, 1 in 10,000.
    public var globalCeiling: Int = 100
    /// A warning is due at every multiple of this many global failures below the ceiling; default 10.
    public var globalWarningThreshold: Int = 10
    /// Seconds after its last failure that an unblocked address is forgotten; default 86400 (a day).
    public var forgetAfter: Double = 86_400

    public init() {}

    /// Throws `OptionsError` for a value that would disable or invert the protection.
    public func validate() throws {
        guard freeFailures >= 0 else { throw OptionsError("freeFailures must be >= 0") }
        guard baseDelay.isFinite, baseDelay > 0 else {
            throw OptionsError("baseDelay must be a positive number of seconds")
        }
        guard maxDelay.isFinite, maxDelay >= baseDelay else {
            throw OptionsError("maxDelay must be finite and >= baseDelay")
        }
        guard globalCeiling >= 1 else { throw OptionsError("globalCeiling must be >= 1") }
        guard globalWarningThreshold >= 1 else {
            throw OptionsError("globalWarningThreshold must be >= 1")
        }
        guard forgetAfter.isFinite, forgetAfter >= maxDelay else {
            throw OptionsError("forgetAfter must be finite and >= maxDelay")
        }
    }
}

/// Whether a login attempt may check its PIN at all.
public enum LoginGate: Equatable, Sendable {
    /// Go on and compare the PIN.
    case allowed
    /// This address is blocked; answer 429 with `Retry-After` set to this many seconds (>= 1).
    case throttled(retryAfterSeconds: Int)
    /// The current PIN has taken `globalCeiling` wrong guesses; PIN logins are off until the PIN changes.
    case paused
}

/// What the caller should do after a wrong PIN was counted.
public enum LoginFailureOutcome: Equatable, Sendable {
    /// Counted; `global` wrong PINs against the current PIN so far, `warn` when that deserves a warning log.
    case counted(global: Int, warn: Bool)
    /// This failure reached the ceiling (reported once per PIN): regenerate the PIN, or pause if it is fixed.
    case ceilingReached(global: Int)
}

/// Counts wrong PINs per client and globally, in the database so that a restart does not reset them.
///
/// The gateway calls `gate` before comparing a PIN, then `recordFailure` or `recordSuccess`. The global
/// counter belongs to one PIN, named by its fingerprint (`PinStore.fingerprint`): a new PIN starts at zero.
/// Use from one thread, like `Database`.
public final class LoginThrottle {
    /// The policy in force.
    public let policy: LoginThrottlePolicy
    private let database: Database
    private let clock: WallClock
    private var lastPurge: Double

    static let fingerprintKey = "login.global.pin_fingerprint"
    static let failuresKey = "login.global.failures"
    /// Seconds between opportunistic purges of quiet addresses.
    static let purgeInterval: Double = 3600

    /// Uses `database` (already migrated) for the counters; throws `OptionsError` for a bad policy.
    public init(database: Database, clock: WallClock, policy: LoginThrottlePolicy = LoginThrottlePolicy()) throws {
        try policy.validate()
        self.database = database
        self.clock = clock
        self.policy = policy
        lastPurge = clock.now
    }

    /// Decides, before the PIN is compared, whether `address` may try `pinFingerprint` now.
    public func gate(address: String, pinFingerprint: String) throws -> LoginGate {
        if try globalFailures(for: pinFingerprint) >= policy.globalCeiling { return .paused }
        guard let blockedUntil = try addressRecord(LoginThrottle.clientKey(for: address))?.blockedUntil else {
            return .allowed
        }
        let remaining = blockedUntil - clock.now
        guard remaining > 0 else { return .allowed }
        return .throttled(retryAfterSeconds: max(1, Int(remaining.rounded(.up))))
    }

    /// Counts a wrong PIN from `address` against the PIN named by `pinFingerprint`.
    public func recordFailure(address: String, pinFingerprint: String) throws -> LoginFailureOutcome {
        let now = clock.now
        if now - lastPurge >= LoginThrottle.purgeInterval { try purgeQuiet() }

        return try database.transaction {
            try countAddressFailure(LoginThrottle.clientKey(for: address), now: now)
            let global = try globalFailures(for: pinFingerprint) + 1
            try storeGlobal(failures: global, fingerprint: pinFingerprint)
            return outcome(global: global)
        }
    }

    /// Clears the counter of `address` after a right PIN; the global counter is left as it is.
    public func recordSuccess(address: String) throws {
        try database.run("DELETE FROM login_failures WHERE address = ?", [.text(LoginThrottle.clientKey(for: address))])
    }

    /// Wrong PINs counted so far against the PIN named by `pinFingerprint` (0 for a PIN never guessed at).
    public func globalFailures(for pinFingerprint: String) throws -> Int {
        var storedFingerprint: String?
        var failures = 0
        try database.forEachRow("SELECT key, value FROM settings WHERE key IN (?, ?)",
                                [.text(LoginThrottle.fingerprintKey), .text(LoginThrottle.failuresKey)]) { row in
            if row.string(at: 0) == LoginThrottle.fingerprintKey { storedFingerprint = row.string(at: 1) }
            else { failures = Int(row.string(at: 1) ?? "") ?? 0 }
        }
        // The counter follows the PIN: once the PIN changes, the old count says nothing about the new one.
        return storedFingerprint == pinFingerprint ? failures : 0
    }

    /// Forgets addresses that are not blocked and have been quiet for `policy.forgetAfter`; returns how many.
    @discardableResult
    public func purgeQuiet() throws -> Int {
        let now = clock.now
        try database.run("DELETE FROM login_failures WHERE last_failure_at <= ? AND blocked_until <= ?",
                         [.real(now - policy.forgetAfter), .real(now)])
        lastPurge = now
        return database.changes
    }

    // MARK: Steps

    private struct AddressRecord {
        var failures: Int
        var blockedUntil: Double
    }

    private func addressRecord(_ key: String) throws -> AddressRecord? {
        var record: AddressRecord?
        try database.forEachRow("SELECT failures, blocked_until FROM login_failures WHERE address = ?",
                                [.text(key)]) { row in
            record = AddressRecord(failures: Int(row.int64(at: 0)), blockedUntil: row.double(at: 1))
        }
        return record
    }

    private func countAddressFailure(_ key: String, now: Double) throws {
        let failures = (try addressRecord(key)?.failures ?? 0) + 1
        let blockedUntil = now + delay(afterFailures: failures)
        try database.run("""
            INSERT INTO login_failures (address, failures, last_failure_at, blocked_until) VALUES (?, ?, ?, ?)
            ON CONFLICT(address) DO UPDATE SET failures = excluded.failures,
                last_failure_at = excluded.last_failure_at, blocked_until = excluded.blocked_until
            """, [.text(key), .integer(Int64(failures)), .real(now), .real(blockedUntil)])
    }

    /// Seconds an address is blocked after its `failures`-th wrong PIN: 0, then base·2^k up to the cap.
    func delay(afterFailures failures: Int) -> Double {
        let excess = failures - policy.freeFailures
        guard excess > 0 else { return 0 }
        // exp2 of a large exponent is infinity, which `min` turns into the cap; no integer shift to overflow.
        return min(policy.maxDelay, policy.baseDelay * exp2(Double(excess - 1)))
    }

    private func storeGlobal(failures: Int, fingerprint: String) throws {
        let upsert = "INSERT INTO settings (key, value) VALUES (?, ?) "
            + "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        try database.run(upsert, [.text(LoginThrottle.fingerprintKey), .text(fingerprint)])
        try database.run(upsert, [.text(LoginThrottle.failuresKey), .text(String(failures))])
    }

    private func outcome(global: Int) -> LoginFailureOutcome {
        if global == policy.globalCeiling { return .ceilingReached(global: global) }
        let warn = global < policy.globalCeiling && global % policy.globalWarningThreshold == 0
        return .counted(global: global, warn: warn)
    }

    // MARK: Client keys

    /// The key an address is counted under: IPv4 as dotted quad, IPv6 as its /64 prefix, e.g. `2001:db8::/64`.
    ///
    /// One host usually controls a whole /64, so counting single IPv6 addresses would let it rotate through
    /// them. IPv4-mapped IPv6 (`::ffff:192.0.2.1`) counts as the IPv4 address; text that is no address at
    /// all is used as given.
    public static func clientKey(for address: String) -> String {
        var text = address.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        // A zone (`fe80::1%eth0`) names an interface, not a host; inet_pton refuses it.
        if let percent = text.firstIndex(of: "%") { text = String(text[..<percent]) }

        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return format(v4) }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return address }
        return prefixKey(v6)
    }

    private static func prefixKey(_ address: in6_addr) -> String {
        var bytes = withUnsafeBytes(of: address) { [UInt8]($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            var v4 = in_addr()
            withUnsafeMutableBytes(of: &v4) { $0.copyBytes(from: bytes[12..<16]) }
            return format(v4)
        }
        for index in 8..<16 { bytes[index] = 0 }
        var prefix = in6_addr()
        withUnsafeMutableBytes(of: &prefix) { $0.copyBytes(from: bytes) }
        return format(prefix) + "/64"
    }

    private static func format(_ address: in_addr) -> String {
        var value = address
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &value, &buffer, socklen_t(buffer.count))
        return String(cString: buffer)
    }

    private static func format(_ address: in6_addr) -> String {
        var value = address
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &value, &buffer, socklen_t(buffer.count))
        return String(cString: buffer)
    }
}
