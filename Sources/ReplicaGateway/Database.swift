import CSQLite
import Foundation
import ReplicaCore

/// A failed SQLite call: the result code, SQLite's own message and what was being attempted.
public struct DatabaseError: Error, Equatable, CustomStringConvertible {
    /// The extended result code, e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`; `primaryCode` drops the extension.
    public let code: Int32
    /// `sqlite3_errmsg` (or SQLite's error text) at the time of the failure.
    public let message: String
    /// The SQL text, or the name of the call when there is no SQL (`open /path`, `bind 2`).
    public let operation: String

    public init(code: Int32, message: String, operation: String) {
        self.code = code
        self.message = message
        self.operation = operation
    }

    /// The primary result code, e.g. `SQLITE_CONSTRAINT` for every kind of constraint failure.
    public var primaryCode: Int32 { code & 0xFF }

    public var description: String {
        "SQLite error \(code) (\(String(cString: sqlite3_errstr(code)))): \(message) — during: \(operation)"
    }
}

/// How the gateway's database is opened.
public struct DatabaseOptions: Sendable, Equatable {
    /// How long a statement waits for another connection's lock before failing, in milliseconds; default 5000.
    public var busyTimeoutMilliseconds: Int = 5000
    /// Most prepared statements kept for reuse, a count; default 32. 0 turns the cache off.
    public var statementCacheCapacity: Int = 32

    public init() {}

    /// Throws `OptionsError` for a negative or absurd value.
    public func validate() throws {
        guard (0...600_000).contains(busyTimeoutMilliseconds) else {
            throw OptionsError("busyTimeoutMilliseconds must be 0...600000 ms")
        }
        guard (0...1024).contains(statementCacheCapacity) else {
            throw OptionsError("statementCacheCapacity must be 0...1024")
        }
    }
}

/// The gateway's schema, as an ordered list of migrations; `PRAGMA user_version` counts those applied.
public enum GatewaySchema {
    /// Migration `i` (0-based) takes a database from `user_version` i to i + 1. Append only: never edit or
    /// reorder an entry that has shipped, because existing files have already run it.
    public static let migrations: [String] = [
        // 1: sessions (only token hashes), per-address login failures, and global key/value counters.
        """
        CREATE TABLE sessions (
            token_hash BLOB PRIMARY KEY,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX sessions_by_expiry ON sessions(expires_at);
        CREATE TABLE login_failures (
            address TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            last_failure_at REAL NOT NULL,
            blocked_until REAL NOT NULL
        );
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
        // 2: the index of projects, with the fields of the API's LinkProjectDTO.
        """
        CREATE TABLE projects (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            image_count INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'ready',
            progress REAL NOT NULL DEFAULT 0,
            processing_stage TEXT NOT NULL DEFAULT '',
            has_model INTEGER NOT NULL DEFAULT 0,
            has_glb INTEGER NOT NULL DEFAULT 0,
            model_detail TEXT NOT NULL DEFAULT '',
            error_message TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        );
        """,
        // 3: each project's images with what the ZIP needs (size, CRC-32, mtime); the intent of a folder rename
        // in flight, so start-up can finish or undo it; folders the user asked to forget but keep on disk.
        """
        CREATE TABLE images (
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            file_name TEXT NOT NULL,
            size INTEGER NOT NULL,
            crc32 INTEGER NOT NULL,
            modified_ns INTEGER NOT NULL,
            added_at REAL NOT NULL,
            PRIMARY KEY (project_id, file_name)
        ) WITHOUT ROWID;
        CREATE TABLE pending_renames (
            project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
            old_name TEXT NOT NULL,
            new_name TEXT NOT NULL
        );
        CREATE TABLE forgotten_folders (
            name TEXT PRIMARY KEY,
            forgotten_at REAL NOT NULL
        );
        """,
        // 4: computations. A job is one compute request with the options it was given; its tasks form a graph
        // (task_dependencies) that workers run; warnings are what a person should see about the job.
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            options TEXT NOT NULL,
            detail TEXT NOT NULL,
            last_stage TEXT,
            state TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            error_message TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE INDEX jobs_by_state ON jobs(state, created_at);
        CREATE INDEX jobs_by_project ON jobs(project_id);
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            stage TEXT NOT NULL,
            kind TEXT NOT NULL,
            image TEXT,
            inputs TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            message TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX tasks_by_job ON tasks(job_id);
        CREATE TABLE task_dependencies (
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            depends_on INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            PRIMARY KEY (task_id, depends_on)
        ) WITHOUT ROWID;
        CREATE TABLE job_warnings (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            at REAL NOT NULL,
            image TEXT,
            message TEXT NOT NULL
        );
        CREATE INDEX job_warnings_by_job ON job_warnings(job_id);
        """,
    ]
}

/// A value bound to a statement parameter or read from a column.
public enum DatabaseValue: Equatable, Sendable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null

    /// A blob from `Data`.
    public static func blob(_ data: Data) -> DatabaseValue { .blob([UInt8](data)) }
}

/// Owns the connection handle, so that statements can outlive a `Database` without dangling.
final class DatabaseConnection {
    let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }

    // close_v2 defers the real close until the last statement is finalized, so order of deinit is free.
    deinit { sqlite3_close_v2(handle) }

    func error(_ code: Int32, _ operation: String) -> DatabaseError {
        DatabaseError(code: code, message: String(cString: sqlite3_errmsg(handle)), operation: operation)
    }
}

/// An SQLite database file, opened in WAL mode with foreign keys on and migrated to `GatewaySchema`.
///
/// Not thread-safe: the connection is opened with `SQLITE_OPEN_NOMUTEX`, so SQLite does no locking of its
/// own and one `Database` (and its statements) must only be used from one thread, the gateway's event loop.
/// Other processes may open the same file; SQLite's file locks and the busy timeout arbitrate between them.
public final class Database {
    /// The path given to `init`.
    public let path: String
    let connection: DatabaseConnection
    private let options: DatabaseOptions
    private var statementCache: [String: Statement] = [:]
    private var savepointDepth = 0

    /// Opens (creating if needed) the file at `path` and applies the migrations it has not run yet.
    public init(path: String, options: DatabaseOptions = DatabaseOptions(),
                migrations: [String] = GatewaySchema.migrations) throws {
        try options.validate()
        self.path = path
        self.options = options
        connection = try Database.open(path)
        try configure()
        try migrate(migrations)
    }

    private static func open(_ path: String) throws -> DatabaseConnection {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let handle else {
            // Even a failed open usually hands back a handle that carries the message and must be closed.
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_close_v2(handle)
            throw DatabaseError(code: code, message: message, operation: "open \(path)")
        }
        sqlite3_extended_result_codes(handle, 1)
        return DatabaseConnection(handle: handle)
    }

    private func configure() throws {
        sqlite3_busy_timeout(connection.handle, Int32(options.busyTimeoutMilliseconds))
        try execute("PRAGMA foreign_keys = ON")
        try execute("PRAGMA synchronous = NORMAL")

        // journal_mode answers with the mode in force; a file system without shared memory keeps the old one.
        let mode = try prepare("PRAGMA journal_mode = WAL")
        let row = try mode.step()
        let active = row ? mode.string(at: 0)?.lowercased() : nil
        guard active == "wal" || active == "memory" else {
            throw DatabaseError(code: SQLITE_ERROR, message: "journal_mode is \(active ?? "unknown"), not wal",
                                operation: "PRAGMA journal_mode = WAL")
        }
    }

    // MARK: Running SQL

    /// Runs one or more `;`-separated statements that take no parameters; rows they return are ignored.
    public func execute(_ sql: String) throws {
        var messagePointer: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(connection.handle, sql, nil, nil, &messagePointer)
        defer { sqlite3_free(messagePointer) }
        guard code == SQLITE_OK else {
            let message = messagePointer.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            throw DatabaseError(code: sqlite3_extended_errcode(connection.handle), message: message, operation: sql)
        }
    }

    /// Compiles one statement; the caller owns it and may reuse it after `reset()`.
    public func prepare(_ sql: String) throws -> Statement {
        var handle: OpaquePointer?
        let code = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard code == SQLITE_OK else { throw connection.error(code, sql) }
        guard let handle else {
            throw DatabaseError(code: SQLITE_MISUSE, message: "no statement in SQL text", operation: sql)
        }
        return Statement(handle: handle, connection: connection, sql: sql)
    }

    /// A reset statement for `sql` from the cache, compiled on first use; for queries run on every request.
    ///
    /// A cached statement that is still mid-iteration (a nested use of the same SQL) is not handed out twice:
    /// the nested caller gets a fresh, uncached one.
    public func cachedStatement(_ sql: String) throws -> Statement {
        if let cached = statementCache[sql], !cached.isActive {
            cached.reset()
            return cached
        }
        let statement = try prepare(sql)
        if statementCache[sql] == nil, statementCache.count < options.statementCacheCapacity {
            statementCache[sql] = statement
        }
        return statement
    }

    /// Runs a statement that returns no rows, binding `values` to its parameters in order.
    public func run(_ sql: String, _ values: [DatabaseValue] = []) throws {
        let statement = try cachedStatement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        while try statement.step() {}
    }

    /// Runs a query, binding `values`, and calls `body` with the statement positioned on each row in turn.
    public func forEachRow(_ sql: String, _ values: [DatabaseValue] = [],
                           _ body: (Statement) throws -> Void) throws {
        let statement = try cachedStatement(sql)
        // Resetting at once ends the read transaction, which would otherwise hold back WAL checkpoints.
        defer { statement.reset() }
        try statement.bind(values)
        while try statement.step() { try body(statement) }
    }

    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(connection.handle)) }

    /// The rowid of the last row inserted on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(connection.handle) }

    // MARK: Transactions and migrations

    /// Runs `body` in a transaction, committed when it returns and rolled back when it throws.
    ///
    /// The outermost level is `BEGIN IMMEDIATE`, so a writer takes the lock up front instead of failing
    /// half-way when another process writes; nested calls become savepoints.
    @discardableResult
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        let name = "level\(savepointDepth)"
        let outermost = savepointDepth == 0
        try execute(outermost ? "BEGIN IMMEDIATE" : "SAVEPOINT \(name)")
        savepointDepth += 1
        defer { savepointDepth -= 1 }
        do {
            let result = try body()
            try execute(outermost ? "COMMIT" : "RELEASE \(name)")
            return result
        } catch {
            // A failed rollback leaves nothing better to report than the error that caused it.
            try? execute(outermost ? "ROLLBACK" : "ROLLBACK TO \(name); RELEASE \(name)")
            throw error
        }
    }

    /// The schema version recorded in the file: the number of migrations applied.
    public func userVersion() throws -> Int {
        var version = 0
        try forEachRow("PRAGMA user_version") { version = Int($0.int64(at: 0)) }
        return version
    }

    /// Applies, in one transaction, every migration past the file's `user_version`; a no-op when up to date.
    public func migrate(_ migrations: [String]) throws {
        try transaction {
            // Read inside the write lock, so two processes opening a fresh file do not both migrate it.
            let current = try userVersion()
            guard current <= migrations.count else {
                throw DatabaseError(code: SQLITE_ERROR,
                                    message: "schema version \(current) is newer than this program's "
                                        + "\(migrations.count); refusing to use the file",
                                    operation: "migrate \(path)")
            }
            for version in current..<migrations.count {
                try execute(migrations[version])
                try execute("PRAGMA user_version = \(version + 1)")
            }
        }
    }
}

/// A compiled statement: bind parameters (1-based), step, read columns (0-based) of the current row.
public final class Statement {
    let handle: OpaquePointer
    private let connection: DatabaseConnection
    /// The SQL it was compiled from, for error messages.
    public let sql: String

    init(handle: OpaquePointer, connection: DatabaseConnection, sql: String) {
        self.handle = handle
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// The statement has been stepped and neither finished nor reset.
    var isActive: Bool { sqlite3_stmt_busy(handle) != 0 }

    /// Rewinds the statement and clears its bindings, ready for another use.
    public func reset() {
        // reset returns the last step's error again, which was already thrown from step().
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Binding

    /// Binds `values` to parameters 1, 2, … in order.
    public func bind(_ values: [DatabaseValue]) throws {
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    /// Binds one value to the parameter at a 1-based `index`.
    public func bind(_ value: DatabaseValue, at index: Int32) throws {
        let code: Int32
        switch value {
        case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
        case .real(let number): code = sqlite3_bind_double(handle, index, number)
        case .text(let text): code = bindText(text, at: index)
        case .blob(let bytes): code = bindBlob(bytes, at: index)
        case .null: code = sqlite3_bind_null(handle, index)
        }
        guard code == SQLITE_OK else { throw connection.error(code, "bind \(index) of \(sql)") }
    }

    private func bindText(_ text: String, at index: Int32) -> Int32 {
        let length = Int32(text.utf8.count)
        return text.withCString { sqlite3_bind_text(handle, index, $0, length, replica_sqlite_transient()) }
    }

    private func bindBlob(_ bytes: [UInt8], at index: Int32) -> Int32 {
        // An empty array may have no base address, and a null pointer would bind NULL instead of an empty blob.
        guard !bytes.isEmpty else { return sqlite3_bind_zeroblob(handle, index, 0) }
        return bytes.withUnsafeBytes {
            sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), replica_sqlite_transient())
        }
    }

    // MARK: Stepping and reading

    /// Advances to the next row: true when a row is ready to read, false when the statement is done.
    @discardableResult
    public func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(code, sql)
        }
    }

    /// Columns in the result.
    public var columnCount: Int32 { sqlite3_column_count(handle) }

    /// The column holds NULL.
    public func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// The column as an integer (SQLite converts other types; NULL reads as 0).
    public func int64(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    /// The column as a floating-point number (NULL reads as 0).
    public func double(at column: Int32) -> Double { sqlite3_column_double(handle, column) }

    /// The column as UTF-8 text, or nil when NULL.
    public func string(at column: Int32) -> String? {
        // text must be fetched before bytes: asking for the text may convert the value and change its length.
        guard !isNull(at: column), let text = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// The column as bytes, or nil when NULL; an empty blob reads as `[]`.
    public func bytes(at column: Int32) -> [UInt8]? {
        guard !isNull(at: column) else { return nil }
        let blob = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard let blob, count > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: blob, count: count))
    }

    /// The column as a typed value, following SQLite's storage class for this row.
    public func value(at column: Int32) -> DatabaseValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: return .integer(int64(at: column))
        case SQLITE_FLOAT: return .real(double(at: column))
        case SQLITE_TEXT: return .text(string(at: column) ?? "")
        case SQLITE_BLOB: return .blob(bytes(at: column) ?? [])
        default: return .null
        }
    }
}
