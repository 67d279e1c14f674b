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
        guard let f = try catalog.filterSettings() else { return nil }
        return OutputFilter(windowBytes: f.windowBytes, salt: hexBytes(f.saltHex), fingerprints: Set(try catalog.filterFingerprints()))
    }

    public func filterStatus() throws -> FilterStatus {
        guard let f = try catalog.filterSettings() else {
            return FilterStatus(enabled: false, windowBytes: nil, fingerprints: 0, records: 0)
        }
        return FilterStatus(enabled: true, windowBytes: f.windowBytes, fingerprints: try catalog.filterFingerprintCount(),
                            records: f.records)
    }

    /// Turns the filter on with a fresh salt. Already on with the same window: nothing changes.
    public func enableFilter(windowBytes: Int = OutputFilter.defaultWindowBytes) throws {
        guard windowBytes >= OutputFilter.minimumWindowBytes, windowBytes <= 4096 else {
            throw CoordinatorError.invalidInput("--bytes must be between \(OutputFilter.minimumWindowBytes) and 4096 (shorter windows block common phrases)")
        }
        if let current = try catalog.filterSettings()?.windowBytes {
            guard current == windowBytes else {
                throw CoordinatorError.invalidInput("the filter is already enabled with \(current)-byte windows; its fingerprints cannot be recomputed (the texts are gone): `sisa filter disable` first")
            }
            return
        }
        let salt = OutputFilter.newSalt().map { String(format: "%02x", $0) }.joined()
        try catalog.transaction { try catalog.enableFilter(windowBytes: windowBytes, saltHex: salt) }
    }

    /// Turns the filter off and erases its fingerprints and salt from the files.
    public func disableFilter() throws {
        try catalog.transaction { try catalog.disableFilter() }
        try purge()
    }

    /// Inside the deletion's transaction: fingerprints of the records about to lose their text.
    func fingerprintForFilter(_ texts: [[UInt8]]) throws {
        guard let f = try catalog.filterSettings() else { return }
        let salt = hexBytes(f.saltHex)
        var all = Set<UInt64>()
        for t in texts { all.formUnion(OutputFilter.fingerprints(of: t, windowBytes: f.windowBytes, salt: salt)) }
        try catalog.addFilterFingerprints(all, records: texts.count)
    }
}
