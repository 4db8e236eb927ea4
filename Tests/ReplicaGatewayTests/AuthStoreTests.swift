import CSQLite
import Foundation
import ReplicaCore
@testable import ReplicaGateway
import XCTest

/// A fresh directory per test, removed afterwards.
class TemporaryDirectoryTestCase: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        let name = "replica-auth-\(getpid())-\(UUID().uuidString)"
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    var databasePath: String { (directory as NSString).appendingPathComponent("gateway.sqlite") }

    func openDatabase() throws -> Database { try Database(path: databasePath) }

    /// Every byte of the database, its WAL and its shared-memory file, as they are on disk now.
    func databaseFileBytes() throws -> Data {
        var all = Data()
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: databasePath + suffix) {
            all.append(try Data(contentsOf: URL(fileURLWithPath: databasePath + suffix)))
        }
        return all
    }
}

// MARK: - Database

final class DatabaseTests: TemporaryDirectoryTestCase {
    func testFreshFileIsMigratedToLatestVersion() throws {
        let database = try openDatabase()
        XCTAssertEqual(try database.userVersion(), GatewaySchema.migrations.count)
        var tables: [String] = []
        try database.forEachRow("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
            tables.append($0.string(at: 0) ?? "")
        }
        XCTAssertEqual(tables, ["forgotten_folders", "images", "job_warnings", "jobs", "login_failures",
                                "pending_renames", "projects", "sessions", "settings", "task_dependencies", "tasks"])
    }

    func testANewNameIsCheckedAgainstItselfAndItsNumberedNamesOnly() throws {
        let projects = ProjectStore(database: try openDatabase())
        for name in ["Vase", "Vase-2", "Vase-10", "Vase.old", "Vase 2", "Vases", "Vas", "vase-3", "Bowl-2"] {
            try projects.insertProject(id: UUID().uuidString.lowercased(), name: name, images: [])
        }
        XCTAssertEqual(try projects.names(sameAsOrNumbered: "Vase"), ["Vase", "Vase-2", "Vase-10"])
        XCTAssertEqual(try projects.names(sameAsOrNumbered: "Bowl"), ["Bowl-2"])
        XCTAssertEqual(try projects.names(sameAsOrNumbered: "Cup"), [])
    }

    func testMigrationIsIdempotentAcrossOpens() throws {
        try openDatabase().run("INSERT INTO settings (key, value) VALUES ('kept', 'yes')")
        let reopened = try openDatabase()
        try reopened.migrate(GatewaySchema.migrations)
        XCTAssertEqual(try reopened.userVersion(), GatewaySchema.migrations.count)
        var value: String?
        try reopened.forEachRow("SELECT value FROM settings WHERE key = 'kept'") { value = $0.string(at: 0) }
        XCTAssertEqual(value, "yes")
    }

    func testAddedMigrationRunsOnlyOnItsOwn() throws {
        _ = try openDatabase()
        let extended = GatewaySchema.migrations + ["CREATE TABLE extra (id INTEGER PRIMARY KEY)"]
        let database = try Database(path: databasePath, migrations: extended)
        XCTAssertEqual(try database.userVersion(), extended.count)
        try database.run("INSERT INTO extra (id) VALUES (1)")
    }

    func testFailedMigrationLeavesVersionAndSchemaUntouched() throws {
        _ = try openDatabase()
        let broken = GatewaySchema.migrations + ["CREATE TABLE half (id INTEGER); CREATE TABLE oops ("]
        XCTAssertThrowsError(try Database(path: databasePath, migrations: broken))
        let database = try openDatabase()
        XCTAssertEqual(try database.userVersion(), GatewaySchema.migrations.count)
        XCTAssertThrowsError(try database.run("SELECT * FROM half"))
    }

    func testSchemaNewerThanProgramIsRefused() throws {
        try openDatabase().execute("PRAGMA user_version = 99")
        XCTAssertThrowsError(try openDatabase()) { error in
            XCTAssertTrue((error as? DatabaseError)?.message.contains("newer") ?? false, "\(error)")
        }
    }

    func testConnectionSettings() throws {
        let database = try openDatabase()
        func pragma(_ name: String) throws -> String? {
            var value: String?
            try database.forEachRow("PRAGMA \(name)") { value = $0.string(at: 0) }
            return value
        }
        XCTAssertEqual(try pragma("journal_mode"), "wal")
        XCTAssertEqual(try pragma("foreign_keys"), "1")
        XCTAssertEqual(try pragma("synchronous"), "1", "1 is NORMAL")
    }

    func testBadSQLThrowsDatabaseErrorWithCodeMessageAndSQL() throws {
        let database = try openDatabase()
        XCTAssertThrowsError(try database.execute("SELEC 1")) { error in
            guard let error = error as? DatabaseError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.code, SQLITE_ERROR)
            XCTAssertTrue(error.message.contains("syntax error"), error.message)
            XCTAssertEqual(error.operation, "SELEC 1")
        }
        XCTAssertThrowsError(try database.prepare("SELECT nope FROM sessions")) { error in
            XCTAssertTrue((error as? DatabaseError)?.message.contains("no such column") ?? false, "\(error)")
        }
    }

    func testConstraintViolationKeepsExtendedCode() throws {
        let database = try openDatabase()
        try database.run("INSERT INTO settings (key, value) VALUES ('a', '1')")
        XCTAssertThrowsError(try database.run("INSERT INTO settings (key, value) VALUES ('a', '2')")) { error in
            guard let error = error as? DatabaseError else { return XCTFail("\(error)") }
            // SQLITE_CONSTRAINT_PRIMARYKEY, a macro Swift does not import.
            XCTAssertEqual(error.code, SQLITE_CONSTRAINT | (6 << 8))
            XCTAssertEqual(error.primaryCode, SQLITE_CONSTRAINT)
            XCTAssertTrue(error.description.contains("UNIQUE constraint failed"), error.description)
        }
    }

    func testEveryValueTypeRoundTrips() throws {
        let database = try openDatabase()
        try database.execute("CREATE TEMP TABLE t (i, r, s, b, e, n)")
        let values: [DatabaseValue] = [.integer(-1 << 40), .real(0.25), .text("bé\u{0}z"), .blob([0, 255, 7]),
                                       .blob([]), .null]
        try database.run("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", values)
        var read: [DatabaseValue] = []
        try database.forEachRow("SELECT * FROM t") { row in
            read = (0..<row.columnCount).map { row.value(at: $0) }
            XCTAssertEqual(row.bytes(at: 4), [])
            XCTAssertNil(row.bytes(at: 5))
            XCTAssertNil(row.string(at: 5))
        }
        XCTAssertEqual(read, values)
    }

    func testTransactionRollsBackWhenBodyThrows() throws {
        let database = try openDatabase()
        struct Abort: Error {}
        XCTAssertThrowsError(try database.transaction {
            try database.run("INSERT INTO settings (key, value) VALUES ('gone', '1')")
            throw Abort()
        })
        try database.transaction {
            try database.run("INSERT INTO settings (key, value) VALUES ('outer', '1')")
            try? database.transaction {
                try database.run("INSERT INTO settings (key, value) VALUES ('inner', '1')")
                throw Abort()
            }
        }
        var keys: [String] = []
        try database.forEachRow("SELECT key FROM settings ORDER BY key") { keys.append($0.string(at: 0) ?? "") }
        XCTAssertEqual(keys, ["outer"])
    }

    func testNestedUseOfOneCachedQueryGetsItsOwnStatement() throws {
        let database = try openDatabase()
        for key in ["a", "b"] { try database.run("INSERT INTO settings (key, value) VALUES (?, 'v')", [.text(key)]) }
        var pairs: [String] = []
        let sql = "SELECT key FROM settings ORDER BY key"
        try database.forEachRow(sql) { outer in
            let left = outer.string(at: 0) ?? ""
            try database.forEachRow(sql) { pairs.append(left + ($0.string(at: 0) ?? "")) }
        }
        XCTAssertEqual(pairs, ["aa", "ab", "ba", "bb"])
    }

    func testOptionsValidation() {
        var options = DatabaseOptions()
        XCTAssertNoThrow(try options.validate())
        options.busyTimeoutMilliseconds = -1
        XCTAssertThrowsError(try options.validate())
    }
}

// MARK: - Sessions

final class SessionStoreTests: TemporaryDirectoryTestCase {
    let clock = ManualClock()

    func makeStore(lifetime: Double = 24 * 3600) throws -> SessionStore {
        try SessionStore(database: openDatabase(), clock: clock, lifetime: lifetime)
    }

    func testTokenIsLowerCaseUUIDVersion4() throws {
        let token = try makeStore().createSession()
        // Version nibble 4, variant bits 10 (8, 9, a or b), lower-case hex in 8-4-4-4-12 groups.
        let pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
        let whole = NSRange(location: 0, length: token.utf16.count)
        XCTAssertEqual(try NSRegularExpression(pattern: pattern).numberOfMatches(in: token, range: whole), 1, token)
        XCTAssertEqual(UUID(uuidString: token)?.uuidString.lowercased(), token)
    }

    func testTokensAreUniqueAndEveryRandomBitVaries() throws {
        let store = try makeStore()
        let tokens = try (0..<2000).map { _ in try store.createSession() }
        XCTAssertEqual(Set(tokens).count, tokens.count)

        // Of the 128 bits, the 6 version and variant bits are fixed and the other 122 must take both values.
        var seenOne = [Bool](repeating: false, count: 128)
        var seenZero = [Bool](repeating: false, count: 128)
        for token in tokens {
            let hex = Array(token.replacingOccurrences(of: "-", with: ""))
            for bit in 0..<128 {
                let nibble = Int(String(hex[bit / 4]), radix: 16)!
                if nibble >> (3 - bit % 4) & 1 == 1 { seenOne[bit] = true } else { seenZero[bit] = true }
            }
        }
        let fixed: Set<Int> = [48, 49, 50, 51, 64, 65]
        let varying = (0..<128).filter { seenOne[$0] && seenZero[$0] }
        XCTAssertEqual(Set(varying), Set(0..<128).subtracting(fixed))
    }

    func testDatabaseHoldsOnlyTheHashNeverTheToken() throws {
        let store = try makeStore()
        let token = try store.createSession()
        let database = try openDatabase()
        var stored: [[UInt8]] = []
        try database.forEachRow("SELECT token_hash FROM sessions") { stored.append($0.bytes(at: 0) ?? []) }
        XCTAssertEqual(stored, [AuthCrypto.sha256(Array(token.utf8))])

        let bytes = try databaseFileBytes()
        XCTAssertFalse(bytes.isEmpty)
        XCTAssertNil(bytes.range(of: Data(token.utf8)))
        XCTAssertNil(bytes.range(of: Data(token.replacingOccurrences(of: "-", with: "").utf8)))
        XCTAssertNil(bytes.range(of: Data(token.uppercased().utf8)))
    }

    func testValidationOfGoodUnknownAndMalformedTokens() throws {
        let store = try makeStore()
        let token = try store.createSession()
        XCTAssertTrue(store.validate(token))
        XCTAssertFalse(store.validate(UUID().uuidString.lowercased()), "well formed but never issued")
        for junk in ["", token.uppercased(), String(token.dropLast()), token + "0", "{\(token.dropFirst(2))}",
                     token.replacingOccurrences(of: "-", with: "_"), String(repeating: "-", count: 36)] {
            XCTAssertFalse(store.validate(junk), junk)
        }
    }

    func testTokenExpiresExactlyAtItsLifetime() throws {
        let store = try makeStore()
        let token = try store.createSession()
        // A binary fraction, so that the second step lands exactly on 24 h.
        clock.advance(by: 24 * 3600 - 0.25)
        XCTAssertTrue(store.validate(token))
        clock.advance(by: 0.25)
        XCTAssertFalse(store.validate(token))
        XCTAssertEqual(store.count, 0, "an expired token seen by validate is dropped")
    }

    func testValidationDoesNotSlideTheExpiry() throws {
        let store = try makeStore(lifetime: 100)
        let token = try store.createSession()
        for _ in 0..<9 {
            clock.advance(by: 10)
            XCTAssertTrue(store.validate(token))
        }
        clock.advance(by: 10)
        XCTAssertFalse(store.validate(token))
    }

    func testSessionsSurviveReopeningTheDatabase() throws {
        let token = try makeStore().createSession()
        clock.advance(by: 3600)
        let reopened = try makeStore()
        XCTAssertTrue(reopened.validate(token))
        clock.advance(by: 23 * 3600)
        XCTAssertFalse(try makeStore().validate(token), "the restored session keeps its original expiry")
    }

    func testPurgeRemovesOnlyExpiredSessions() throws {
        let store = try makeStore(lifetime: 100)
        let old = try store.createSession()
        clock.advance(by: 50)
        let young = try store.createSession()
        clock.advance(by: 60)
        XCTAssertEqual(try store.purgeExpired(), 1)
        XCTAssertEqual(store.count, 1)
        XCTAssertFalse(store.validate(old))
        XCTAssertTrue(store.validate(young))
        var rows = 0
        try openDatabase().forEachRow("SELECT count(*) FROM sessions") { rows = Int($0.int64(at: 0)) }
        XCTAssertEqual(rows, 1)
    }

    func testCreatingSessionsPurgesOpportunistically() throws {
        let store = try makeStore(lifetime: 60)
        _ = try store.createSession()
        clock.advance(by: SessionStore.purgeInterval)
        _ = try store.createSession()
        XCTAssertEqual(store.count, 1)
    }
}

// MARK: - PIN

final class PinStoreTests: TemporaryDirectoryTestCase {
    var pinPath: String { (directory as NSString).appendingPathComponent("pin") }

    func testGeneratedPinIsSixDigitsInAPrivateFileAndReused() throws {
        let first = try PinStore(dataDirectory: directory)
        XCTAssertFalse(first.isFixed)
        XCTAssertTrue(PinStore.isValidPin(first.pin))
        XCTAssertEqual(try fileMode(pinPath), 0o600)
        XCTAssertEqual(try String(contentsOfFile: pinPath, encoding: .utf8), first.pin + "\n")
        XCTAssertEqual(try PinStore(dataDirectory: URL(fileURLWithPath: directory)).pin, first.pin, "reused")

        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertEqual(leftovers, ["pin"], "no temp file stays behind")
    }

    func testPinFileModeIsExactly0600WhateverTheUmask() throws {
        let saved = umask(0)
        defer { umask(saved) }
        let store = try PinStore(dataDirectory: directory)
        XCTAssertEqual(try fileMode(pinPath), 0o600, "not wider under umask 000")
        umask(0o277)
        try store.regenerate()
        XCTAssertEqual(try fileMode(pinPath), 0o600, "still writable by its owner under umask 277")
    }

    func fileMode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw PinStoreError.io(operation: "stat", path: path, errno: errno) }
        return info.st_mode & 0o777
    }

    func testMissingDataDirectoryIsCreated() throws {
        let nested = (directory as NSString).appendingPathComponent("a/b")
        let store = try PinStore(dataDirectory: nested)
        XCTAssertTrue(FileManager.default.fileExists(atPath: (nested as NSString).appendingPathComponent("pin")))
        XCTAssertTrue(PinStore.isValidPin(store.pin))
    }

    func testFixedPinIsValidatedAndNeverWritten() throws {
        for bad in ["12345", "1234567", "12345a", " 123456", "123456\n", "١٢٣٤٥٦", "+12345", ""] {
            XCTAssertThrowsError(try PinStore(dataDirectory: directory, fixedPin: bad), bad) { error in
                XCTAssertEqual(error as? PinStoreError, .invalidFixedPin)
            }
        }
        let store = try PinStore(dataDirectory: directory, fixedPin: "000123")
        XCTAssertTrue(store.isFixed)
        XCTAssertEqual(store.pin, "000123")
        XCTAssertFalse(FileManager.default.fileExists(atPath: pinPath))
        XCTAssertThrowsError(try store.regenerate()) { XCTAssertEqual($0 as? PinStoreError, .pinIsFixed) }
        XCTAssertFalse(try store.reloadIfChanged())
    }

    func testFixedPinWinsOverTheFile() throws {
        let generated = try PinStore(dataDirectory: directory).pin
        let fixed = generated == "111111" ? "222222" : "111111"
        XCTAssertEqual(try PinStore(dataDirectory: directory, fixedPin: fixed).pin, fixed)
    }

    func testRegenerationIsSeenByAnotherInstance() throws {
        let gateway = try PinStore(dataDirectory: directory)
        let cli = try PinStore(dataDirectory: directory)
        XCTAssertFalse(try gateway.reloadIfChanged(), "nothing changed yet")

        var fresh = try cli.regenerate()
        // One PIN in a million repeats; draw again so that the change is visible in the value too.
        while fresh == gateway.pin { fresh = try cli.regenerate() }
        XCTAssertEqual(try String(contentsOfFile: pinPath, encoding: .utf8), fresh + "\n")

        XCTAssertTrue(try gateway.reloadIfChanged())
        XCTAssertEqual(gateway.pin, fresh)
        XCTAssertTrue(gateway.matches(fresh))
        XCTAssertFalse(try gateway.reloadIfChanged(), "a second look finds nothing new")
        XCTAssertFalse(try cli.reloadIfChanged(), "the writer knows its own file")
    }

    func testGarbledOrMissingFileKeepsThePinInForce() throws {
        let store = try PinStore(dataDirectory: directory)
        let pin = store.pin
        try "12ab56\n".write(toFile: pinPath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try store.reloadIfChanged()) {
            XCTAssertEqual($0 as? PinStoreError, .invalidPinFile(path: self.pinPath))
        }
        XCTAssertEqual(store.pin, pin)
        XCTAssertThrowsError(try PinStore(dataDirectory: directory), "a garbled file is not silently replaced")

        try FileManager.default.removeItem(atPath: pinPath)
        XCTAssertThrowsError(try store.reloadIfChanged())
        XCTAssertEqual(store.pin, pin)
    }

    func testMatchesOnlyTheExactPin() throws {
        let store = try PinStore(dataDirectory: directory, fixedPin: "482193")
        XCTAssertTrue(store.matches("482193"))
        for wrong in ["482194", "48219", "4821930", "", "482193 ", "082193"] {
            XCTAssertFalse(store.matches(wrong), wrong)
        }
    }

    func testRandomPinsCoverEveryDigitInEveryPosition() throws {
        var seen = Array(repeating: Set<Character>(), count: 6)
        for _ in 0..<3000 {
            let pin = try PinStore.randomPin()
            XCTAssertTrue(PinStore.isValidPin(pin), pin)
            for (position, digit) in pin.enumerated() { seen[position].insert(digit) }
        }
        XCTAssertEqual(seen, Array(repeating: Set("0123456789"), count: 6), "leading zeros are kept")
    }

    func testFingerprintIsSHA256HexOfThePin() throws {
        let store = try PinStore(dataDirectory: directory, fixedPin: "000000")
        XCTAssertEqual(store.fingerprint, "91b4d142823f7d20c5f08df69122de43f35f057a988d9619f6d3138485c9a203")
    }
}

// MARK: - Login throttle

final class LoginThrottleTests: TemporaryDirectoryTestCase {
    let clock = ManualClock()
    let pinA = AuthCrypto.sha256Hex("111111")
    let pinB = AuthCrypto.sha256Hex("222222")

    func makeThrottle(_ policy: LoginThrottlePolicy = LoginThrottlePolicy()) throws -> LoginThrottle {
        try LoginThrottle(database: openDatabase(), clock: clock, policy: policy)
    }

    @discardableResult
    func fail(_ throttle: LoginThrottle, _ address: String, times: Int = 1,
              pin: String? = nil) throws -> LoginFailureOutcome? {
        var last: LoginFailureOutcome?
        for _ in 0..<times { last = try throttle.recordFailure(address: address, pinFingerprint: pin ?? pinA) }
        return last
    }

    func gate(_ throttle: LoginThrottle, _ address: String, pin: String? = nil) throws -> LoginGate {
        try throttle.gate(address: address, pinFingerprint: pin ?? pinA)
    }

    func testFreeFailuresThenOneSecond() throws {
        let throttle = try makeThrottle()
        try fail(throttle, "192.0.2.1", times: 3)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .allowed)
        try fail(throttle, "192.0.2.1")
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .throttled(retryAfterSeconds: 1))
        clock.advance(by: 1)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .allowed)
    }

    func testDelaysDoubleUpToTheCap() throws {
        let throttle = try makeThrottle()
        try fail(throttle, "192.0.2.1", times: 3)
        var delays: [Int] = []
        for _ in 0..<13 {
            try fail(throttle, "192.0.2.1")
            guard case .throttled(let seconds) = try gate(throttle, "192.0.2.1") else { return XCTFail("not blocked") }
            delays.append(seconds)
            clock.advance(by: Double(seconds))
        }
        XCTAssertEqual(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900])
        XCTAssertEqual(throttle.delay(afterFailures: 10_000), 900, "no overflow far past the cap")
    }

    func testRetryAfterIsRemainingSecondsRoundedUp() throws {
        let throttle = try makeThrottle()
        try fail(throttle, "192.0.2.1", times: 6)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .throttled(retryAfterSeconds: 4))
        clock.advance(by: 0.5)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .throttled(retryAfterSeconds: 4))
        // Binary fractions, so that the clock lands exactly on the end of the block.
        clock.advance(by: 3.25)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .throttled(retryAfterSeconds: 1))
        clock.advance(by: 0.25)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .allowed)
    }

    func testSuccessResetsTheAddressButNotTheGlobalCount() throws {
        let throttle = try makeThrottle()
        try fail(throttle, "192.0.2.1", times: 5)
        try throttle.recordSuccess(address: "192.0.2.1")
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .allowed)
        try fail(throttle, "192.0.2.1", times: 3)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .allowed, "three free failures again")
        XCTAssertEqual(try throttle.globalFailures(for: pinA), 8)
    }

    func testIPv6IsCountedPerSlash64() throws {
        XCTAssertEqual(LoginThrottle.clientKey(for: "2001:db8::5"), "2001:db8::/64")
        XCTAssertEqual(LoginThrottle.clientKey(for: "2001:0DB8:0:0:ffff::1"), "2001:db8::/64")
        XCTAssertEqual(LoginThrottle.clientKey(for: "2001:db8:0:1::5"), "2001:db8:0:1::/64")
        XCTAssertEqual(LoginThrottle.clientKey(for: "[fe80::1%eth0]"), "fe80::/64")
        XCTAssertEqual(LoginThrottle.clientKey(for: "::1"), "::/64")
        XCTAssertEqual(LoginThrottle.clientKey(for: "::ffff:192.0.2.7"), "192.0.2.7")
        XCTAssertEqual(LoginThrottle.clientKey(for: "127.0.0.1"), "127.0.0.1")
        XCTAssertEqual(LoginThrottle.clientKey(for: "not an address"), "not an address")

        let throttle = try makeThrottle()
        for host in 1...4 { try fail(throttle, "2001:db8::\(host)") }
        XCTAssertEqual(try gate(throttle, "2001:db8::99"), .throttled(retryAfterSeconds: 1), "same /64")
        XCTAssertEqual(try gate(throttle, "2001:db8:0:1::1"), .allowed, "a neighbouring /64")
    }

    func testCountersSurviveReopening() throws {
        try fail(makeThrottle(), "192.0.2.1", times: 5)
        let reopened = try makeThrottle()
        XCTAssertEqual(try gate(reopened, "192.0.2.1"), .throttled(retryAfterSeconds: 2))
        XCTAssertEqual(try reopened.globalFailures(for: pinA), 5)
    }

    func testGlobalWarningsCeilingOnceThenPaused() throws {
        let throttle = try makeThrottle()
        var warnings: [Int] = []
        var ceilings: [Int] = []
        for attempt in 1...105 {
            switch try fail(throttle, "198.51.100.\(attempt)") {
            case .counted(let global, let warn)?:
                XCTAssertEqual(global, attempt)
                if warn { warnings.append(global) }
            case .ceilingReached(let global)?: ceilings.append(global)
            case nil: XCTFail("no outcome")
            }
        }
        XCTAssertEqual(warnings, [10, 20, 30, 40, 50, 60, 70, 80, 90])
        XCTAssertEqual(ceilings, [100])
        XCTAssertEqual(try gate(throttle, "203.0.113.9"), .paused, "paused for everyone, not only guessers")
        XCTAssertEqual(try gate(makeThrottle(), "203.0.113.9"), .paused, "and after a restart")
    }

    func testNewPinRestartsTheGlobalCount() throws {
        let throttle = try makeThrottle()
        for attempt in 1...100 { try fail(throttle, "198.51.100.\(attempt % 50)") }
        XCTAssertEqual(try gate(throttle, "203.0.113.9"), .paused)
        XCTAssertEqual(try gate(throttle, "203.0.113.9", pin: pinB), .allowed)
        XCTAssertEqual(try fail(throttle, "203.0.113.9", pin: pinB), .counted(global: 1, warn: false))
        XCTAssertEqual(try throttle.globalFailures(for: pinB), 1)
        XCTAssertEqual(try throttle.globalFailures(for: pinA), 0, "the old PIN's count is gone with it")
    }

    func testUnrelatedAddressIsAllowedWhileAGuesserIsBlocked() throws {
        let throttle = try makeThrottle()
        try fail(throttle, "192.0.2.1", times: 20)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .throttled(retryAfterSeconds: 900))
        XCTAssertEqual(try gate(throttle, "192.0.2.2"), .allowed)
        XCTAssertEqual(try gate(throttle, "2001:db8::1"), .allowed)
    }

    func testQuietAddressesAreForgottenAfterADay() throws {
        let throttle = try makeThrottle()
        try fail(throttle, "192.0.2.1", times: 2)
        clock.advance(by: 86_400 - 1)
        try fail(throttle, "192.0.2.2", times: 2)
        XCTAssertEqual(try throttle.purgeQuiet(), 0)
        clock.advance(by: 1)
        XCTAssertEqual(try throttle.purgeQuiet(), 1)
        try fail(throttle, "192.0.2.1", times: 3)
        XCTAssertEqual(try gate(throttle, "192.0.2.1"), .allowed, "its old failures no longer count")
        try fail(throttle, "192.0.2.2")
        XCTAssertEqual(try gate(throttle, "192.0.2.2"), .allowed)
        try fail(throttle, "192.0.2.2")
        XCTAssertEqual(try gate(throttle, "192.0.2.2"), .throttled(retryAfterSeconds: 1), "still remembered")
    }

    func testPolicyValidation() {
        XCTAssertNoThrow(try LoginThrottlePolicy().validate())
        var policy = LoginThrottlePolicy()
        policy.maxDelay = 0.5
        XCTAssertThrowsError(try policy.validate()) {
            XCTAssertTrue(($0 as? OptionsError)?.description.hasPrefix("maxDelay") ?? false, "\($0)")
        }
        policy = LoginThrottlePolicy()
        policy.globalCeiling = 0
        XCTAssertThrowsError(try makeThrottle(policy))
    }
}
