import Foundation
import SisaEngine

/// A record as the catalog knows it.
public struct RecordInfo: Equatable, Sendable {
    public let id: String
    public let sha256: String?
    public let group: String
    public let shard: Int
    public let slice: Int
    public let holdout: Bool
    public let ingest: Int
    public let status: RecordStatus
}

/// A record's state in the catalog (column records.status).
public enum RecordStatus: String, Codable, Sendable {
    /// Ingested and not deleted: trained on (or held out), text kept.
    case live
    /// Deleted: text and hash erased, the row kept as a tombstone for receipts.
    case deleted
}

/// A deletion request's state (column deletion_requests.state).
public enum DeletionRequestState: String, Codable, Sendable {
    /// Durable: records erased from the catalog, shards quarantined.
    case queued
    /// The affected shards are being retrained.
    case retraining
    /// Retrained; the receipt is recorded.
    case done
    /// Retraining failed; it is retried by the next pass (`sisa train`).
    case failed
}

/// A record's deletion state (column deletions.status).
public enum DeletionStatus: String, Codable, Sendable {
    /// Durable, shard quarantined, retraining not yet done.
    case pending
    /// Retrained (or nothing to retrain); the receipt is recorded.
    case done
}

public struct CheckpointInfo: Equatable, Sendable {
    public let key: String
    public let shard: Int
    public let stage: Int
    public let file: String
    public let rawBytes: Int
    public let storedBytes: Int
    public let checksum: String

    public init(key: String, shard: Int, stage: Int, file: String, rawBytes: Int, storedBytes: Int, checksum: String) {
        self.key = key
        self.shard = shard
        self.stage = stage
        self.file = file
        self.rawBytes = rawBytes
        self.storedBytes = storedBytes
        self.checksum = checksum
    }
}

public struct ShardState: Equatable, Sendable {
    public let index: Int
    public let quarantined: Bool
    public let digest: String?
    public let stagesTrained: Int
    public let currentKey: String?

    public init(index: Int, quarantined: Bool, digest: String?, stagesTrained: Int, currentKey: String?) {
        self.index = index
        self.quarantined = quarantined
        self.digest = digest
        self.stagesTrained = stagesTrained
        self.currentKey = currentKey
    }
}

/// The store's SQLite catalog: configuration, records, ingest calls, the
/// deletion log, checkpoints and per-shard state. WAL mode, secure_delete on
/// (freed pages are zeroed), schema versioned with `PRAGMA user_version`.
/// The store's SQLite database, and the only owner of its SQL.
///
/// Concurrency, and how SQLite's locking serves it:
/// - Writers (ingest, train, delete, filter) are one process at a time: the
///   store lock (flock on `lock`) is taken before the catalog is written.
///   Each write is one IMMEDIATE transaction (`transaction`): the write lock
///   is taken at BEGIN, so two writers never deadlock upgrading a read lock,
///   and the busy timeout makes a second one wait instead of failing.
/// - Readers (status, query, score, compare, verify, another thread of the
///   writer) need no lock. In WAL mode a reader sees the last committed
///   snapshot and neither blocks the writer nor waits for it, so a query
///   never sees half a deletion.
/// - One connection per Catalog, opened serialized (SQLITE_OPEN_FULLMUTEX):
///   several threads may call its verbs. A multi-statement transaction must
///   not interleave with another thread's writes on the same connection, so
///   a process with concurrent tasks funnels writes through one task.
/// - Erasure (`truncateLog`) needs the write-ahead log free of old
///   snapshots: a reader that holds one delays it, and it reports that
///   rather than claim the log is clean.
///
/// `@unchecked Sendable`: its one field is the connection, which is Sendable
/// (see `SQLiteDatabase`); a transaction spanning several statements is the
/// caller's to keep on one thread (the server's submissions take a lock).
public final class Catalog: @unchecked Sendable {
    /// Every statement on the store's database is one of this class's verbs;
    /// nothing else holds the handle.
    let db: SQLiteDatabase
    public var path: String { db.path }
    static let schemaVersion = 6

    public init(path: String) throws {
        db = try SQLiteDatabase(path: path)
        // A page cache of up to 128 MB (used only as needed): a large ingest's pages
        // then reach the write-ahead log once, not once per spill.
        // Temporary storage in memory: each statement's journal (which a statement
        // with constraints and triggers keeps, holding the original pages it
        // changes) otherwise spills to an unlinked file in /var/tmp. That file
        // took two thirds of an ingest's writes (118 MB for a 20 MB catalog),
        // and for a deletion it would hold the deleted text's pages on a disk
        // sisa never overwrites.
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA cache_size=-131072; PRAGMA temp_store=MEMORY;")
        try migrate()
    }

    private func migrate() throws {
        let version = try db.scalarInt("PRAGMA user_version") ?? 0
        if version > Catalog.schemaVersion {
            throw CoordinatorError.corrupt("\(db.path): catalog schema \(version) is newer than this sisa (\(Catalog.schemaVersion))")
        }
        if version < 1 {
            try db.transaction {
                try db.execute("""
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE ingests (
                    id INTEGER PRIMARY KEY,
                    at TEXT NOT NULL,
                    sources TEXT NOT NULL,
                    format TEXT NOT NULL,
                    grp TEXT NOT NULL,
                    holdout REAL NOT NULL,
                    appended_slice INTEGER,
                    records INTEGER NOT NULL
                );
                CREATE TABLE records (
                    seq INTEGER PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    sha256 TEXT,
                    grp TEXT NOT NULL,
                    ingest INTEGER NOT NULL REFERENCES ingests(id),
                    shard INTEGER NOT NULL,
                    slice INTEGER NOT NULL,
                    holdout INTEGER NOT NULL,
                    status TEXT NOT NULL DEFAULT 'live',
                    bytes INTEGER NOT NULL,
                    text BLOB
                );
                CREATE INDEX records_shard ON records(shard, status, holdout);
                CREATE INDEX records_group ON records(grp);
                CREATE TABLE deletions (
                    seq INTEGER PRIMARY KEY,
                    record TEXT NOT NULL,
                    shard INTEGER NOT NULL,
                    slice INTEGER NOT NULL,
                    requested_at TEXT NOT NULL,
                    completed_at TEXT,
                    status TEXT NOT NULL DEFAULT 'pending',
                    receipt TEXT
                );
                CREATE TABLE checkpoints (
                    key TEXT PRIMARY KEY,
                    shard INTEGER NOT NULL,
                    stage INTEGER NOT NULL,
                    file TEXT NOT NULL,
                    raw_bytes INTEGER NOT NULL,
                    stored_bytes INTEGER NOT NULL,
                    checksum TEXT NOT NULL,
                    created_at TEXT NOT NULL
                );
                CREATE TABLE shards (
                    idx INTEGER PRIMARY KEY,
                    quarantined INTEGER NOT NULL DEFAULT 0,
                    digest TEXT,
                    stages_trained INTEGER NOT NULL DEFAULT 0,
                    current_key TEXT
                );
                PRAGMA user_version = 1;
                """)
            }
        }
        if version < 2 {
            // API tokens (Access/APITokens.swift): a hash of each, never the token.
            try db.transaction {
                try db.execute("""
                CREATE TABLE IF NOT EXISTS tokens (
                    name TEXT PRIMARY KEY,
                    role TEXT NOT NULL,
                    hash TEXT NOT NULL UNIQUE,
                    created_at TEXT NOT NULL,
                    revoked_at TEXT
                );
                PRAGMA user_version = 2;
                """)
            }
        }
        if version < 3 {
            // Deletion requests: what a caller submitted together, with its state and receipt.
            // Idempotent steps: a migration interrupted by a crash is run again in full.
            try db.transaction {
                try db.execute("""
                CREATE TABLE IF NOT EXISTS deletion_requests (
                    id INTEGER PRIMARY KEY,
                    reason TEXT,
                    state TEXT NOT NULL,
                    requested_at TEXT NOT NULL,
                    completed_at TEXT,
                    receipt TEXT
                );
                """)
                let columns = try db.query("PRAGMA table_info(deletions)") { $0.text(1) }
                if !columns.contains("request") {
                    try db.execute("ALTER TABLE deletions ADD COLUMN request INTEGER REFERENCES deletion_requests(id)")
                }
                try db.execute("PRAGMA user_version = 3")
            }
        }
        if version < 4 {
            // Record counts kept by triggers in the same transaction as every
            // change to `records`, so `status` reads a few rows instead of
            // counting a million (issue: a million records).
            try db.transaction {
                try db.execute("""
                CREATE TABLE IF NOT EXISTS record_counts (
                    status TEXT NOT NULL,
                    grp TEXT NOT NULL,
                    shard INTEGER NOT NULL,
                    holdout INTEGER NOT NULL,
                    n INTEGER NOT NULL,
                    PRIMARY KEY (status, grp, shard, holdout)
                ) WITHOUT ROWID;
                DELETE FROM record_counts;
                INSERT INTO record_counts(status, grp, shard, holdout, n)
                    SELECT status, grp, shard, holdout, COUNT(*) FROM records GROUP BY status, grp, shard, holdout;
                CREATE TRIGGER IF NOT EXISTS record_counts_insert AFTER INSERT ON records BEGIN
                    INSERT INTO record_counts(status, grp, shard, holdout, n) VALUES (new.status, new.grp, new.shard, new.holdout, 1)
                        ON CONFLICT(status, grp, shard, holdout) DO UPDATE SET n = n + 1;
                END;
                CREATE TRIGGER IF NOT EXISTS record_counts_delete AFTER DELETE ON records BEGIN
                    UPDATE record_counts SET n = n - 1
                        WHERE status = old.status AND grp = old.grp AND shard = old.shard AND holdout = old.holdout;
                END;
                CREATE TRIGGER IF NOT EXISTS record_counts_update AFTER UPDATE OF status, grp, shard, holdout ON records BEGIN
                    UPDATE record_counts SET n = n - 1
                        WHERE status = old.status AND grp = old.grp AND shard = old.shard AND holdout = old.holdout;
                    INSERT INTO record_counts(status, grp, shard, holdout, n) VALUES (new.status, new.grp, new.shard, new.holdout, 1)
                        ON CONFLICT(status, grp, shard, holdout) DO UPDATE SET n = n + 1;
                END;
                PRAGMA user_version = 4;
                """)
            }
        }
        if version < 5 {
            // Sessions of the status page (Access/Sessions.swift): the hash of a
            // random id, never the id, and the token it was signed in with.
            try db.transaction {
                try db.execute("""
                CREATE TABLE IF NOT EXISTS sessions (
                    hash TEXT PRIMARY KEY,
                    token TEXT NOT NULL REFERENCES tokens(name),
                    created_at TEXT NOT NULL,
                    expires_at REAL NOT NULL
                );
                CREATE INDEX IF NOT EXISTS sessions_token ON sessions(token);
                PRAGMA user_version = 5;
                """)
            }
        }
        if version < 6 {
            // A retraining's receipt is stored once and referenced by every
            // deletion and request it closes: written into each row, a pass
            // over 7,700 records wrote 7,700 copies of a 60 KB receipt (700 MB
            // of log; scripts/abuse's flood). Deletions get the indexes their
            // lookups need (by request, by record, by status).
            try db.transaction {
                let hasColumn = try db.query("PRAGMA table_info(deletions)") { $0.text(1) }.contains("receipt_id")
                if !hasColumn {
                    try db.execute("""
                    ALTER TABLE deletions ADD COLUMN receipt_id INTEGER REFERENCES receipts(id);
                    ALTER TABLE deletion_requests ADD COLUMN receipt_id INTEGER REFERENCES receipts(id);
                    """)
                }
                try db.execute("""
                CREATE TABLE IF NOT EXISTS receipts (id INTEGER PRIMARY KEY, json TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS deletions_request ON deletions(request);
                CREATE INDEX IF NOT EXISTS deletions_record ON deletions(record);
                CREATE INDEX IF NOT EXISTS deletions_status ON deletions(status, seq);
                PRAGMA user_version = 6;
                """)
            }
        }
    }

    // MARK: configuration

    public func meta(_ key: String) throws -> String? {
        try db.query("SELECT value FROM meta WHERE key = ?", key) { $0.text(0) }.first
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value)
    }

    public func config() throws -> StoreConfig {
        guard let s = try meta("config") else { throw CoordinatorError.corrupt("\(db.path): no configuration recorded") }
        let config: StoreConfig
        do { config = try JSONDecoder().decode(StoreConfig.self, from: Data(s.utf8)) } catch {
            throw CoordinatorError.corrupt("\(db.path): unreadable configuration: \(error)")
        }
        do { try config.validate() } catch { throw CoordinatorError.corrupt("\(db.path): invalid configuration: \(error)") }
        return config
    }

    /// True once `train` has run: the configuration is then frozen and later
    /// ingest calls append slices.
    public func trainingStarted() throws -> Bool { try meta("training_started") == "1" }

    /// Ingest calls logged so far.
    public func ingestCount() throws -> Int { try db.scalarInt("SELECT COUNT(*) FROM ingests") ?? 0 }

    // MARK: records

    static let recordColumns = "id, sha256, grp, shard, slice, holdout, ingest, status"
    static func record(_ r: Row) -> RecordInfo {
        RecordInfo(id: r.text(0), sha256: r.optionalText(1), group: r.text(2), shard: r.int(3), slice: r.int(4),
                   holdout: r.bool(5), ingest: r.int(6), status: RecordStatus(rawValue: r.text(7)) ?? .deleted)
    }

    public func records(group: String? = nil, includeDeleted: Bool = false) throws -> [RecordInfo] {
        var sql = "SELECT \(Catalog.recordColumns) FROM records WHERE 1=1"
        if !includeDeleted { sql += " AND status = '\(RecordStatus.live.rawValue)'" }
        if let group {
            sql += " AND grp = ?"
            return try db.query(sql + " ORDER BY seq", group, map: Catalog.record)
        }
        return try db.query(sql + " ORDER BY seq", map: Catalog.record)
    }

    /// One page of the live records in ingest order (`records(group:)` sliced),
    /// read with LIMIT and OFFSET: the page's rows are all that is loaded,
    /// but SQLite walks every row it skips.
    public func records(group: String?, offset: Int, limit: Int) throws -> [RecordInfo] {
        precondition(offset >= 0)
        return try recordPage(group: group, afterSeq: 0, offset: offset, limit: limit)
    }

    /// A page of live records after the record `after` (exclusive; nil: from
    /// the first), in ingest order: keyset paging, whose cost is the page's
    /// rows wherever it starts. An unknown `after` id is an error.
    public func records(group: String?, after: String?, offset: Int = 0, limit: Int) throws -> [RecordInfo] {
        precondition(offset >= 0)
        var from = 0
        if let after {
            guard let seq = try db.scalarInt("SELECT seq FROM records WHERE id = ?", after) else {
                throw CoordinatorError.unknownIDs([after])
            }
            from = seq
        }
        return try recordPage(group: group, afterSeq: from, offset: offset, limit: limit)
    }

    private func recordPage(group: String?, afterSeq: Int, offset: Int, limit: Int) throws -> [RecordInfo] {
        precondition(limit >= 0)
        var sql = "SELECT \(Catalog.recordColumns) FROM records WHERE seq > ? AND status = '\(RecordStatus.live.rawValue)'"
        var args: [SQLBindable?] = [afterSeq]
        if let group { sql += " AND grp = ?"; args.append(group) }
        args += [limit, offset]
        return try db.query(sql + " ORDER BY seq LIMIT ? OFFSET ?", arguments: args, map: Catalog.record)
    }

    /// How many live records (of one group) there are.
    public func liveRecordCount(group: String?) throws -> Int {
        // From the counts the triggers keep (see migration 4), not a scan.
        var sql = "SELECT COALESCE(SUM(n), 0) FROM record_counts WHERE status = '\(RecordStatus.live.rawValue)'"
        guard let group else { return try db.scalarInt(sql) ?? 0 }
        sql += " AND grp = ?"
        return try db.scalarInt(sql, group) ?? 0
    }

    public func record(id: String) throws -> RecordInfo? {
        try db.query("SELECT \(Catalog.recordColumns) FROM records WHERE id = ?", id, map: Catalog.record).first
    }

    /// Live training records of a shard: (id, slice, text).
    public func trainingRecords(shard: Int) throws -> [(id: String, slice: Int, text: [UInt8])] {
        try db.query("SELECT id, slice, text FROM records WHERE shard = ? AND status = 'live' AND holdout = 0", shard) {
            ($0.text(0), $0.int(1), $0.blob(2) ?? [])
        }
    }

    /// Record counts by status, group, shard and holdout, read from the
    /// counts the triggers keep (for `status`, which must not scan the records).
    public struct RecordCounts: Sendable {
        public var live = 0, training = 0, holdout = 0, deleted = 0
        public var groups: [String: Int] = [:]
        public var trainingPerShard: [Int: Int] = [:]
    }

    public func recordCounts() throws -> RecordCounts {
        var c = RecordCounts()
        for (status, group, shard, holdout, n) in try db.query("SELECT status, grp, shard, holdout, n FROM record_counts WHERE n > 0",
                                                             map: { ($0.text(0), $0.text(1), $0.int(2), $0.bool(3), $0.int(4)) }) {
            guard status == RecordStatus.live.rawValue else { c.deleted += n; continue }
            c.live += n
            c.groups[group, default: 0] += n
            if holdout { c.holdout += n } else { c.training += n; c.trainingPerShard[shard, default: 0] += n }
        }
        return c
    }

    /// What a shard's stage chain depends on in the catalog, cheaply: the
    /// newest record's sequence number (every ingest raises it; rows are never
    /// removed, so it never falls back) and the shard's deleted records (every
    /// deletion raises it). Equal counts mean the same live records.
    public func chainInputs(shard: Int) throws -> (maxSeq: Int, deleted: Int) {
        (try db.scalarInt("SELECT MAX(seq) FROM records") ?? 0,
         try db.scalarInt("SELECT COALESCE(SUM(n), 0) FROM record_counts WHERE status = ? AND shard = ?", RecordStatus.deleted.rawValue, shard) ?? 0)
    }

    /// A shard's live training records without their text: id, slice, the
    /// text's sha256 and its length in bytes (what a byte store's plan needs).
    public func trainingRecordDigests(shard: Int) throws -> [(id: String, slice: Int, sha256: String, bytes: Int)] {
        try db.query("SELECT id, slice, sha256, bytes FROM records WHERE shard = ? AND status = 'live' AND holdout = 0", shard) {
            ($0.text(0), $0.int(1), $0.text(2), $0.int(3))
        }
    }

    /// Live records with their text, optionally filtered.
    public func texts(holdout: Bool?, group: String? = nil) throws -> [(id: String, group: String, shard: Int, text: [UInt8])] {
        var sql = "SELECT id, grp, shard, text FROM records WHERE status = 'live'"
        var args: [SQLBindable?] = []
        if let holdout { sql += " AND holdout = ?"; args.append(holdout) }
        if let group { sql += " AND grp = ?"; args.append(group) }
        sql += " ORDER BY seq"
        return try db.query(sql, arguments: args) { ($0.text(0), $0.text(1), $0.int(2), $0.blob(3) ?? []) }
    }

    /// One page of live records with their text, in ingest order, after the
    /// record with sequence number `afterSeq` (keyset paging: a page costs its rows).
    public func textsPage(holdout: Bool, group: String? = nil, afterSeq: Int, limit: Int)
        throws -> [(seq: Int, id: String, group: String, shard: Int, text: [UInt8])] {
        var sql = "SELECT seq, id, grp, shard, text FROM records WHERE seq > ? AND status = 'live' AND holdout = ?"
        var args: [SQLBindable?] = [afterSeq, holdout]
        if let group { sql += " AND grp = ?"; args.append(group) }
        args.append(limit)
        return try db.query(sql + " ORDER BY seq LIMIT ?", arguments: args) { ($0.int(0), $0.text(1), $0.text(2), $0.int(3), $0.blob(4) ?? []) }
    }

    public func text(id: String) throws -> [UInt8]? {
        try db.query("SELECT text FROM records WHERE id = ? AND status = 'live'", id) { $0.blob(0) }.first ?? nil
    }

    public func groups() throws -> [String] {
        try db.query("SELECT DISTINCT grp FROM records WHERE status = 'live' ORDER BY grp") { $0.text(0) }
    }

    public func maxAppendedSlice() throws -> Int? {
        try db.scalarInt("SELECT MAX(appended_slice) FROM ingests")
    }

    // MARK: checkpoints and shards

    public func checkpoint(key: String) throws -> CheckpointInfo? {
        try db.query("SELECT key, shard, stage, file, raw_bytes, stored_bytes, checksum FROM checkpoints WHERE key = ?", key) {
            CheckpointInfo(key: $0.text(0), shard: $0.int(1), stage: $0.int(2), file: $0.text(3), rawBytes: $0.int(4),
                           storedBytes: $0.int(5), checksum: $0.text(6))
        }.first
    }

    public func checkpoints() throws -> [CheckpointInfo] {
        try db.query("SELECT key, shard, stage, file, raw_bytes, stored_bytes, checksum FROM checkpoints ORDER BY shard, stage") {
            CheckpointInfo(key: $0.text(0), shard: $0.int(1), stage: $0.int(2), file: $0.text(3), rawBytes: $0.int(4),
                           storedBytes: $0.int(5), checksum: $0.text(6))
        }
    }

    public func addCheckpoint(_ c: CheckpointInfo) throws {
        try db.run("""
            INSERT INTO checkpoints(key, shard, stage, file, raw_bytes, stored_bytes, checksum, created_at)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(key) DO UPDATE SET file = excluded.file, raw_bytes = excluded.raw_bytes,
                stored_bytes = excluded.stored_bytes, checksum = excluded.checksum
            """, c.key, c.shard, c.stage, c.file, c.rawBytes, c.storedBytes, c.checksum, Catalog.now())
    }

    public func removeCheckpoint(key: String) throws {
        try db.run("DELETE FROM checkpoints WHERE key = ?", key)
    }

    public func shardStates() throws -> [ShardState] {
        try db.query("SELECT idx, quarantined, digest, stages_trained, current_key FROM shards ORDER BY idx") {
            ShardState(index: $0.int(0), quarantined: $0.bool(1), digest: $0.optionalText(2), stagesTrained: $0.int(3),
                       currentKey: $0.optionalText(4))
        }
    }

    public func setShard(_ s: ShardState) throws {
        try db.run("""
            INSERT INTO shards(idx, quarantined, digest, stages_trained, current_key) VALUES(?, ?, ?, ?, ?)
            ON CONFLICT(idx) DO UPDATE SET quarantined = excluded.quarantined, digest = excluded.digest,
                stages_trained = excluded.stages_trained, current_key = excluded.current_key
            """, s.index, s.quarantined, s.digest, s.stagesTrained, s.currentKey)
    }

    public func pendingDeletions() throws -> [(record: String, shard: Int, slice: Int, holdout: Bool, seq: Int)] {
        try db.query("""
            SELECT d.record, d.shard, d.slice, COALESCE(r.holdout, 0), d.seq FROM deletions d
            LEFT JOIN records r ON r.id = d.record WHERE d.status = ? ORDER BY d.seq
            """, DeletionStatus.pending.rawValue) { ($0.text(0), $0.int(1), $0.int(2), $0.bool(3), $0.int(4)) }
    }

    /// Whether a deletion of a training record of `shard` logged after `seq` is pending.
    func hasPendingDeletion(shard: Int, after seq: Int) throws -> Bool {
        try db.scalarInt("""
            SELECT 1 FROM deletions d JOIN records r ON r.id = d.record
            WHERE d.status = ? AND d.shard = ? AND d.seq > ? AND r.holdout = 0 LIMIT 1
            """, DeletionStatus.pending.rawValue, shard, seq) != nil
    }

    // MARK: writes (each call runs inside the caller's `transaction`)

    /// One IMMEDIATE transaction: all of `body`'s writes or none.
    public func transaction<R>(_ body: () throws -> R) throws -> R { try db.transaction(body) }

    /// Logs an ingest call; returns its id.
    func addIngest(sources: String, format: String, group: String, holdout: Double, appendedSlice: Int?,
                   records: Int) throws -> Int {
        try db.run("""
            INSERT INTO ingests(at, sources, format, grp, holdout, appended_slice, records) VALUES(?, ?, ?, ?, ?, ?, ?)
            """, Catalog.now(), sources, format, group, holdout, appendedSlice, records)
        return try db.scalarInt("SELECT last_insert_rowid()")!
    }

    /// Inserts a record unless its id is already in the catalog (one B-tree
    /// descent for both the check and the insert); returns whether it was inserted.
    /// `sha256` is the text's (hex), computed by the caller (off the writing thread).
    func addRecordIfNew(id: String, text: [UInt8], sha256: String, group: String, ingest: Int, shard: Int, slice: Int,
                        holdout: Bool) throws -> Bool {
        try db.run("""
            INSERT INTO records(id, sha256, grp, ingest, shard, slice, holdout, bytes, text, status)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING
            """, id, sha256, group, ingest, shard, slice, holdout, text.count, text, RecordStatus.live.rawValue) == 1
    }

    func setIngestRecordCount(_ ingest: Int, _ records: Int) throws {
        try db.run("UPDATE ingests SET records = ? WHERE id = ?", records, ingest)
    }

    /// Logs a deletion request (state queued); returns its id.
    func addDeletionRequest(reason: String?) throws -> Int {
        try db.run("INSERT INTO deletion_requests(reason, state, requested_at) VALUES(?, ?, ?)",
                   reason, DeletionRequestState.queued.rawValue, Catalog.now())
        return try db.scalarInt("SELECT last_insert_rowid()")!
    }

    /// Erases a record's text and hash, logs its deletion as pending (part of
    /// `request`) and, for a training record, quarantines its shard (queries leave it out).
    func recordDeletion(_ r: RecordInfo, request: Int) throws {
        try db.run("UPDATE records SET status = ?, text = NULL, sha256 = NULL WHERE id = ?", RecordStatus.deleted.rawValue, r.id)
        try db.run("INSERT INTO deletions(record, shard, slice, requested_at, status, request) VALUES(?, ?, ?, ?, ?, ?)",
                   r.id, r.shard, r.slice, Catalog.now(), DeletionStatus.pending.rawValue, request)
        if !r.holdout { try db.run("UPDATE shards SET quarantined = 1 WHERE idx = ?", r.shard) }
    }

    public func deletionRequest(id: Int) throws -> (reason: String?, state: DeletionRequestState, requestedAt: String,
                                                      completedAt: String?, receipt: String?, records: [String])? {
        guard let row = try db.query("""
            SELECT reason, state, requested_at, completed_at, COALESCE((SELECT json FROM receipts WHERE id = receipt_id), receipt)
            FROM deletion_requests WHERE id = ?
            """, id, map: {
            ($0.optionalText(0), DeletionRequestState(rawValue: $0.text(1)) ?? .queued, $0.text(2), $0.optionalText(3), $0.optionalText(4))
        }).first else { return nil }
        let records = try db.query("SELECT record FROM deletions WHERE request = ? ORDER BY seq", id) { $0.text(0) }
        return (row.0, row.1, row.2, row.3, row.4, records)
    }

    /// Ids of the latest deletion requests, newest first.
    public func recentDeletionRequests(limit: Int) throws -> [Int] {
        try db.query("SELECT id FROM deletion_requests ORDER BY id DESC LIMIT ?", limit) { $0.int(0) }
    }

    /// Deletion requests not yet done (queued, retraining or failed).
    public func openDeletionRequests() throws -> Int {
        try db.scalarInt("SELECT COUNT(*) FROM deletion_requests WHERE state != ?", DeletionRequestState.done.rawValue) ?? 0
    }

    /// The request that deleted a record, if it was deleted through one.
    func deletionRequestID(record: String) throws -> Int? {
        try db.scalarInt("SELECT request FROM deletions WHERE record = ? AND request IS NOT NULL ORDER BY seq DESC LIMIT 1", record)
    }

    /// Queued (or failed) requests move to `retraining`.
    func markRequestsRetraining() throws {
        try db.run("UPDATE deletion_requests SET state = ? WHERE state IN (?, ?)", DeletionRequestState.retraining.rawValue,
                   DeletionRequestState.queued.rawValue, DeletionRequestState.failed.rawValue)
    }

    /// Requests being retrained move to `failed` (the next pass retries them).
    func markRequestsFailed() throws {
        try db.run("UPDATE deletion_requests SET state = ? WHERE state = ?",
                   DeletionRequestState.failed.rawValue, DeletionRequestState.retraining.rawValue)
    }

    /// Requests none of whose deletions is still pending are done, with `receipt`.
    func completeRequests(receiptID: Int?) throws {
        try db.run("""
            UPDATE deletion_requests SET state = ?, completed_at = ?, receipt_id = COALESCE(?, receipt_id)
            WHERE state != ? AND NOT EXISTS (SELECT 1 FROM deletions d WHERE d.request = deletion_requests.id AND d.status = ?)
            """, DeletionRequestState.done.rawValue, Catalog.now(), receiptID, DeletionRequestState.done.rawValue,
                   DeletionStatus.pending.rawValue)
    }

    /// The latest deletion request of a record: its state and receipt (JSON, once done with retraining).
    public func deletion(record id: String) throws -> (status: DeletionStatus, requestedAt: String, receipt: String?)? {
        try db.query("""
            SELECT status, requested_at, COALESCE((SELECT json FROM receipts WHERE id = receipt_id), receipt)
            FROM deletions WHERE record = ? ORDER BY seq DESC LIMIT 1
            """, id) {
            (DeletionStatus(rawValue: $0.text(0)) ?? .pending, $0.text(1), $0.optionalText(2))
        }.first
    }

    /// Closes the pending deletions logged up to `seq` (all, if nil), with the
    /// receipt (JSON) when there was retraining, and the requests they finish.
    func completePendingDeletions(upTo seq: Int? = nil, receipt: String?) throws {
        var receiptID: Int?
        if let receipt {
            try db.run("INSERT INTO receipts(json) VALUES(?)", receipt)
            receiptID = try db.scalarInt("SELECT last_insert_rowid()")
        }
        try db.run("UPDATE deletions SET status = ?, completed_at = ?, receipt_id = COALESCE(?, receipt_id) WHERE status = ? AND seq <= ?",
                   DeletionStatus.done.rawValue, Catalog.now(), receiptID, DeletionStatus.pending.rawValue, seq ?? Int.max)
        try completeRequests(receiptID: receiptID)
    }

    /// Lifts every quarantine (deletions before any training: nothing to retrain).
    func releaseQuarantines() throws {
        try db.run("UPDATE shards SET quarantined = 0")
    }

    // MARK: erasure

    /// Checkpoints the write-ahead log into the database file and truncates
    /// it, so no old copy of a page survives there. Returns false if a reader
    /// holding an old snapshot kept the log from being truncated after retries.
    ///
    /// The database file itself needs no rewrite: with secure_delete on,
    /// SQLite zeroes a deleted cell where it lies, the free space a page
    /// keeps after defragmenting, and every page it frees to the freelist
    /// (overflow pages included). So erasure costs the pages the deletion
    /// touched, not the catalog's size (a VACUUM per deletion rewrote the
    /// whole file: 230 ms at 100k records). ErasureTests greps every file.
    func truncateLog(attempts: Int = 50) throws -> Bool {
        for attempt in 0..<attempts {
            let r = try db.query("PRAGMA wal_checkpoint(TRUNCATE)") { ($0.int(0), $0.int(1), $0.int(2)) }.first
            if let (busy, log, done) = r, busy == 0, log == done { return true }
            if attempt < attempts - 1 { usleep(100_000) }
        }
        return false
    }

    // MARK: API tokens

    func addToken(name: String, role: String, hash: String) throws {
        try db.run("INSERT INTO tokens(name, role, hash, created_at) VALUES(?, ?, ?, ?)", name, role, hash, Catalog.now())
    }

    public func tokens() throws -> [(name: String, role: String, createdAt: String, revokedAt: String?)] {
        try db.query("SELECT name, role, created_at, revoked_at FROM tokens ORDER BY created_at, name") {
            ($0.text(0), $0.text(1), $0.text(2), $0.optionalText(3))
        }
    }

    /// The live token with this hash: (name, role).
    func token(hash: String) throws -> (name: String, role: String)? {
        try db.query("SELECT name, role FROM tokens WHERE hash = ? AND revoked_at IS NULL", hash) { ($0.text(0), $0.text(1)) }.first
    }

    /// Returns false if no live token has this name. Its sessions end with it.
    func revokeToken(name: String) throws -> Bool {
        guard try db.run("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", Catalog.now(), name) > 0 else {
            return false
        }
        try db.run("DELETE FROM sessions WHERE token = ?", name)
        return true
    }

    // MARK: sessions (Access/Sessions.swift)

    func addSession(hash: String, token: String, expiresAt: Double) throws {
        try db.run("INSERT INTO sessions(hash, token, created_at, expires_at) VALUES(?, ?, ?, ?)", hash, token, Catalog.now(), expiresAt)
    }

    /// The live session's token name and role: unexpired, and its token not revoked.
    func session(hash: String, now: Double) throws -> (name: String, role: String)? {
        try db.query("""
            SELECT t.name, t.role FROM sessions s JOIN tokens t ON t.name = s.token
            WHERE s.hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL
            """, hash, now) { ($0.text(0), $0.text(1)) }.first
    }

    func deleteSession(hash: String) throws {
        try db.run("DELETE FROM sessions WHERE hash = ?", hash)
    }

    func deleteExpiredSessions(now: Double) throws {
        try db.run("DELETE FROM sessions WHERE expires_at <= ?", now)
    }

    // MARK: output filter (opt-in; see Guardrails/FilterStore.swift)

    /// Window length, salt (hex) and covered-record count, if the filter is on.
    public func filterSettings() throws -> (windowBytes: Int, saltHex: String, records: Int)? {
        guard let n = try meta("filter_bytes").flatMap(Int.init), let salt = try meta("filter_salt") else { return nil }
        return (n, salt, Int(try meta("filter_records") ?? "0") ?? 0)
    }

    public func filterFingerprints() throws -> [UInt64] {
        try db.query("SELECT hash FROM filter_fingerprints") { UInt64(bitPattern: Int64($0.int(0))) }
    }

    public func filterFingerprintCount() throws -> Int {
        try db.scalarInt("SELECT count(*) FROM filter_fingerprints") ?? 0
    }

    /// Call inside a transaction.
    func enableFilter(windowBytes: Int, saltHex: String) throws {
        try db.execute("CREATE TABLE IF NOT EXISTS filter_fingerprints (hash INTEGER PRIMARY KEY) WITHOUT ROWID")
        try setMeta("filter_bytes", String(windowBytes))
        try setMeta("filter_salt", saltHex)
        try setMeta("filter_records", "0")
    }

    /// Call inside a transaction.
    func disableFilter() throws {
        try db.execute("DROP TABLE IF EXISTS filter_fingerprints")
        for k in ["filter_bytes", "filter_salt", "filter_records"] { try db.run("DELETE FROM meta WHERE key = ?", k) }
    }

    /// Call inside the deletion's transaction.
    func addFilterFingerprints(_ hashes: Set<UInt64>, records: Int) throws {
        for h in hashes.sorted() { try db.run("INSERT OR IGNORE INTO filter_fingerprints(hash) VALUES(?)", Int64(bitPattern: h)) }
        let count = Int(try meta("filter_records") ?? "0") ?? 0
        try setMeta("filter_records", String(count + records))
    }

    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }
}
