import CSQLite
import Foundation

/// A thin typed wrapper over libsqlite3: one connection, prepared statements,
/// transactions. Errors carry SQLite's message.
public struct SQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    /// The statement that failed (whitespace collapsed, cut at 120 characters), if any.
    public var statement: String? = nil
    public var description: String {
        "SQLite error \(code): \(message)" + (statement.map { " (in `\($0)`)" } ?? "")
    }

    init(code: Int32, message: String, sql: String? = nil) {
        self.code = code
        self.message = message
        statement = sql.map { s in
            let flat = s.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            return flat.count > 120 ? String(flat.prefix(117)) + "..." : flat
        }
    }
}

private let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

public enum SQLValue: Equatable {
    case null
    case int(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

public protocol SQLBindable {
    var sqlValue: SQLValue { get }
}
extension Int: SQLBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .int(self) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .real(self) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Bool: SQLBindable { public var sqlValue: SQLValue { .int(self ? 1 : 0) } }
extension Array: SQLBindable where Element == UInt8 { public var sqlValue: SQLValue { .blob(self) } }
extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// One result row, read by column index.
public struct Row {
    let stmt: OpaquePointer
    public func int(_ i: Int32) -> Int { Int(sqlite3_column_int64(stmt, i)) }
    public func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }
    public func bool(_ i: Int32) -> Bool { sqlite3_column_int64(stmt, i) != 0 }
    public func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }
    public func text(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, i) else { return "" }
        return String(cString: p)
    }
    public func optionalText(_ i: Int32) -> String? { isNull(i) ? nil : text(i) }
    public func blob(_ i: Int32) -> [UInt8]? {
        if isNull(i) { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: n))
    }
}

/// `@unchecked Sendable`: the connection is opened FULLMUTEX (SQLite
/// serialises calls on it), and the statement cache is only touched with
/// `statementsLock` held; a statement is checked out to one caller at a time.
public final class SQLiteDatabase: @unchecked Sendable {
    let handle: OpaquePointer
    public let path: String
    // Prepared statements by SQL text, reused (parsing a statement per row made
    // ingest and every catalog scan pay for the parser). A statement is taken
    // out while in use, so two threads never share one, and reset as soon as
    // it is put back, so no read snapshot outlives its call.
    private var statements: [String: OpaquePointer] = [:]
    private let statementsLock = NSLock()
    private static let statementCacheLimit = 64

    public init(path: String, busyTimeoutMs: Int32 = 10_000) throws {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close(db) }
            throw SQLiteError(code: rc, message: "\(path): \(msg)")
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, busyTimeoutMs)
    }

    deinit {
        for stmt in statements.values { sqlite3_finalize(stmt) }
        sqlite3_close_v2(handle)
    }

    private func checkout(_ sql: String) throws -> OpaquePointer {
        if let stmt = statementsLock.withLock({ statements.removeValue(forKey: sql) }) { return stmt }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql) }
        return stmt
    }

    /// Resets a statement and keeps it for the next call of the same SQL (or
    /// finalizes it when one is already kept, or the cache is full).
    private func checkin(_ sql: String, _ stmt: OpaquePointer) {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        let kept = statementsLock.withLock { () -> Bool in
            guard statements[sql] == nil, statements.count < Self.statementCacheLimit else { return false }
            statements[sql] = stmt
            return true
        }
        if !kept { sqlite3_finalize(stmt) }
    }

    private func error(_ rc: Int32, _ sql: String? = nil) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "error"
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: msg, sql: sql)
        }
    }

    private func prepare(_ sql: String, _ args: [SQLBindable?]) throws -> OpaquePointer {
        let stmt = try checkout(sql)
        for (i, a) in args.enumerated() {
            let idx = Int32(i + 1)
            let r: Int32
            switch a?.sqlValue ?? .null {
            case .null: r = sqlite3_bind_null(stmt, idx)
            case .int(let v): r = sqlite3_bind_int64(stmt, idx, v)
            case .real(let v): r = sqlite3_bind_double(stmt, idx, v)
            case .text(let v): r = sqlite3_bind_text(stmt, idx, v, -1, SQLITE_TRANSIENT)
            case .blob(let v): r = v.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
            }
            if r != SQLITE_OK { let e = error(r, sql); checkin(sql, stmt); throw e }
        }
        return stmt
    }

    /// Runs a statement with parameters; returns the number of changed rows.
    @discardableResult
    public func run(_ sql: String, _ args: SQLBindable?...) throws -> Int {
        try run(sql, arguments: args)
    }

    @discardableResult
    public func run(_ sql: String, arguments args: [SQLBindable?]) throws -> Int {
        let stmt = try prepare(sql, args)
        defer { checkin(sql, stmt) }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            if rc != SQLITE_ROW { throw error(rc, sql) }
        }
        return Int(sqlite3_changes(handle))
    }

    /// Maps every result row.
    public func query<T>(_ sql: String, _ args: SQLBindable?..., map: (Row) throws -> T) throws -> [T] {
        try query(sql, arguments: args, map: map)
    }

    public func query<T>(_ sql: String, arguments args: [SQLBindable?], map: (Row) throws -> T) throws -> [T] {
        let stmt = try prepare(sql, args)
        defer { checkin(sql, stmt) }
        var out: [T] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            if rc != SQLITE_ROW { throw error(rc, sql) }
            out.append(try map(Row(stmt: stmt)))
        }
        return out
    }

    public func scalarInt(_ sql: String, _ args: SQLBindable?...) throws -> Int? {
        let stmt = try prepare(sql, args)
        defer { checkin(sql, stmt) }
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return sqlite3_column_type(stmt, 0) == SQLITE_NULL ? nil : Int(sqlite3_column_int64(stmt, 0)) }
        if rc == SQLITE_DONE { return nil }
        throw error(rc, sql)
    }

    /// Runs `body` in one IMMEDIATE transaction: all of it or none of it.
    public func transaction<R>(_ body: () throws -> R) throws -> R {
        try execute("BEGIN IMMEDIATE")
        do {
            let r = try body()
            try execute("COMMIT")
            return r
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}
