import Foundation

/// The store's opt-in output filter: a salt, a window length and the
/// fingerprints of every record deleted while it is enabled, in the catalog
/// (table `filter_fingerprints`, meta keys `filter_bytes` and `filter_salt`).
/// Records deleted before it was enabled are not covered: their text is gone.
public struct FilterStatus: Codable, Sendable {
    public let enabled: Bool
    public let windowBytes: Int?
    public let fingerprints: Int
    /// Deleted records whose windows are fingerprinted.
    public let records: Int
}

extension Store {
    /// The filter, if enabled.
    public func outputFilter() throws -> OutputFilter? {
        guard let n = try catalog.meta("filter_bytes").flatMap(Int.init), let saltHex = try catalog.meta("filter_salt") else {
            return nil
        }
        let hashes = try catalog.db.query("SELECT hash FROM filter_fingerprints") { UInt64(bitPattern: Int64($0.int(0))) }
        return OutputFilter(windowBytes: n, salt: hexBytes(saltHex), fingerprints: Set(hashes))
    }

    public func filterStatus() throws -> FilterStatus {
        let n = try catalog.meta("filter_bytes").flatMap(Int.init)
        guard n != nil else { return FilterStatus(enabled: false, windowBytes: nil, fingerprints: 0, records: 0) }
        return FilterStatus(enabled: true, windowBytes: n,
                            fingerprints: try catalog.db.scalarInt("SELECT count(*) FROM filter_fingerprints") ?? 0,
                            records: Int(try catalog.meta("filter_records") ?? "0") ?? 0)
    }

    /// Turns the filter on with a fresh salt. Already on with the same window: nothing changes.
    public func enableFilter(windowBytes: Int = OutputFilter.defaultWindowBytes) throws {
        guard windowBytes >= OutputFilter.minimumWindowBytes, windowBytes <= 4096 else {
            throw CoordinatorError.invalidInput("--bytes must be between \(OutputFilter.minimumWindowBytes) and 4096 (shorter windows block common phrases)")
        }
        if let current = try catalog.meta("filter_bytes").flatMap(Int.init) {
            guard current == windowBytes else {
                throw CoordinatorError.invalidInput("the filter is already enabled with \(current)-byte windows; its fingerprints cannot be recomputed (the texts are gone): `sisa filter disable` first")
            }
            return
        }
        try catalog.db.transaction {
            try catalog.db.execute("CREATE TABLE IF NOT EXISTS filter_fingerprints (hash INTEGER PRIMARY KEY) WITHOUT ROWID")
            try catalog.setMeta("filter_bytes", String(windowBytes))
            try catalog.setMeta("filter_salt", OutputFilter.newSalt().map { String(format: "%02x", $0) }.joined())
            try catalog.setMeta("filter_records", "0")
        }
    }

    /// Turns the filter off and erases its fingerprints and salt from the files.
    public func disableFilter() throws {
        try catalog.db.transaction {
            try catalog.db.execute("DROP TABLE IF EXISTS filter_fingerprints")
            for k in ["filter_bytes", "filter_salt", "filter_records"] { try catalog.db.run("DELETE FROM meta WHERE key = ?", k) }
        }
        try purge()
    }

    /// Inside the deletion's transaction: fingerprints of the records about to lose their text.
    func fingerprintForFilter(_ texts: [[UInt8]]) throws {
        guard let n = try catalog.meta("filter_bytes").flatMap(Int.init), let saltHex = try catalog.meta("filter_salt") else { return }
        let salt = hexBytes(saltHex)
        for t in texts {
            for h in OutputFilter.fingerprints(of: t, windowBytes: n, salt: salt) {
                try catalog.db.run("INSERT OR IGNORE INTO filter_fingerprints(hash) VALUES(?)", Int64(bitPattern: h))
            }
        }
        let count = Int(try catalog.meta("filter_records") ?? "0") ?? 0
        try catalog.setMeta("filter_records", String(count + texts.count))
    }
}
