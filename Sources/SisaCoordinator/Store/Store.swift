import Foundation
import SisaEngine

/// A SISA store: a folder with the catalog (catalog.sqlite) and the
/// checkpoints/ folder. The library API behind every `sisa` command.
///
/// `@unchecked Sendable`: the local executor trains several shards of one
/// store on several threads. Those threads read `config` and the models,
/// and reach the catalog through `CheckpointStore.mutex` or single
/// statements (Sendable, see `SQLiteDatabase`); `config` changes only in
/// `train(rebuild:)`, on the calling thread, before and after the threads
/// run, and `lock` only at open.
public final class Store: @unchecked Sendable {
    public let url: URL
    public let catalog: Catalog
    public let checkpoints: CheckpointStore
    /// How shards' models are built, saved and restored (byte models, or a base with adapters).
    public let models: ShardModels
    /// Fixed once training starts, but for the numerics version (`adoptCurrentNumerics`).
    public internal(set) var config: StoreConfig
    private var lock: StoreLock?

    static let catalogName = "catalog.sqlite"

    /// Creates a new store; fails if one exists at `url`. A base store
    /// (`config.base` from `BaseStoreConfig.inspect`, `base` the GGUF file or
    /// Hugging Face folder it read) gets the base copied under `base/`.
    public static func create(at url: URL, config: StoreConfig, base source: URL? = nil) throws -> Store {
        guard (config.base != nil) == (source != nil) else {
            throw CoordinatorError.invalidInput("a base store needs the base's files, and a byte-level store has none")
        }
        try config.validate()
        let catalogPath = url.appendingPathComponent(catalogName).path
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let lock = try StoreLock(storeDir: url, command: "init")
        let catalog = try Catalog(path: catalogPath)
        // A catalog without a configuration is an `init` that died half-way: finish it.
        if try catalog.meta("config") != nil { throw CoordinatorError.storeExists(url.path) }
        if let source, let base = config.base {
            let installed = try BaseFiles.install(source, into: url)
            guard installed.sha256 == base.sha256, installed.name == base.name else {
                throw CoordinatorError.io("\(source.path) changed while it was copied into the store (sha256 \(installed.sha256.prefix(16))..., read as \(base.sha256.prefix(16))...); run `sisa init` again")
            }
        }
        let json = String(decoding: config.canonicalJSON, as: UTF8.self)
        try catalog.transaction {
            try catalog.setMeta("config", json)
            try catalog.setMeta("created_at", Catalog.now())
            for s in 0..<config.shards {
                try catalog.setShard(ShardState(index: s, quarantined: false, digest: nil, stagesTrained: 0, currentKey: nil))
            }
        }
        let store = try Store(url: url, catalog: catalog)
        store.lock = lock
        store.checkpoints.canRepair = true
        return store
    }

    /// Opens an existing store. `writer` takes the store lock (ingest, train, delete).
    public static func open(at url: URL, writer: String? = nil) throws -> Store {
        let catalogPath = url.appendingPathComponent(catalogName).path
        guard FileManager.default.fileExists(atPath: catalogPath) else { throw CoordinatorError.noStore(url.path) }
        let lock = try writer.map { try StoreLock(storeDir: url, command: $0) }
        let catalog = try Catalog(path: catalogPath)
        guard try catalog.meta("config") != nil else {
            throw CoordinatorError.corrupt("\(url.path): `sisa init` did not finish here; run it again")
        }
        let store = try Store(url: url, catalog: catalog)
        store.lock = lock
        store.checkpoints.canRepair = lock != nil
        return store
    }

    private init(url: URL, catalog: Catalog) throws {
        self.url = url
        self.catalog = catalog
        self.config = try catalog.config()
        models = ShardModels(config: config, storeURL: url)
        self.checkpoints = try CheckpointStore(dir: url.appendingPathComponent("checkpoints"), catalog: catalog,
                                               floatBytes: try models.stateFloatBytes())
    }

    /// Stages per shard: the initial slices plus one per ingest call made after training began.
    public func stageCount() throws -> Int {
        max(config.slices, (try catalog.maxAppendedSlice() ?? -1) + 1)
    }

    public func plan(shard: Int) throws -> ShardPlan {
        Schedule.plan(shard: shard, config: config, stageCount: try stageCount(),
                      records: try catalog.trainingRecords(shard: shard), codec: try models.codec())
    }

    // MARK: ingest

    public struct IngestReport: Sendable {
        public let ingest: Int
        public let added: Int
        public let skipped: Int
        public let holdout: Int
        public let appendedSlice: Int?
        public let perShard: [Int]
    }

    /// What an ingest has done so far (for a progress line).
    public struct IngestProgress: Sendable {
        public let inserted: Int
        public let bytesRead: Int
        public let totalBytes: Int
    }

    /// Reads every path a chunk at a time and inserts each record as it is
    /// parsed, all in one transaction: on any error (a malformed line, a
    /// duplicate, a full disk) the catalog is exactly as it was. Memory is
    /// bounded by the page cache and the longest record, not by the input.
    /// `progress` is called about every 100,000 records and at the end.
    public func ingest(paths: [String], format: InputFormat = .auto, group: String? = nil,
                       holdout: Double = 0, skipDuplicates: Bool = false,
                       progress: ((IngestProgress) -> Void)? = nil) throws -> IngestReport {
        guard !paths.isEmpty else { throw CoordinatorError.invalidInput("no input files given") }
        for p in paths where !FileManager.default.fileExists(atPath: p) {
            throw CoordinatorError.invalidInput("\(p): no such file or directory")
        }
        return try ingest(source: .files(paths, format), group: group, holdout: holdout, skipDuplicates: skipDuplicates,
                          progress: progress)
    }

    /// `ingest(paths:)` on any source: files, or JSON lines in memory (the
    /// server's request bodies, which thus never land in a scratch file).
    public func ingest(source: IngestSource, group: String? = nil, holdout: Double = 0, skipDuplicates: Bool = false,
                       progress: ((IngestProgress) -> Void)? = nil) throws -> IngestReport {
        guard holdout >= 0, holdout < 1 else { throw CoordinatorError.invalidInput("--holdout must be in [0, 1)") }
        if let g = group, g.isEmpty { throw CoordinatorError.invalidInput("--group must not be empty") }
        let totalBytes: Int
        let sources: String, formatName: String
        switch source {
        case let .files(paths, format):
            totalBytes = paths.reduce(0) { $0 + RecordParser.inputBytes($1) }
            (sources, formatName) = (paths.joined(separator: "\n"), format.rawValue)
        case let .jsonLines(bytes, name):
            (totalBytes, sources, formatName) = (bytes.count, name, InputFormat.jsonl.rawValue)
        }
        let config = self.config
        let maxDPBytes = config.dp.map { _ in DPConfig.maxRecordBytes(context: config.context) }
        let report = try catalog.transaction {
            let chainsBefore = try (0..<config.shards).map { try currentRecordedChain(shard: $0) }
            let started = try catalog.trainingStarted()
            let appended: Int? = started ? max(config.slices, (try catalog.maxAppendedSlice() ?? -1) + 1) : nil
            let ingestID = try catalog.addIngest(sources: sources, format: formatName, group: group ?? "",
                                                 holdout: holdout, appendedSlice: appended, records: 0)
            // Parsing, ids, placement and text hashes on a reader thread; inserts here.
            let stream = PlacedRecordStream(source: source) { r in
                let id = r.id ?? RecordParser.derivedID(r.text)
                if let limit = maxDPBytes, r.text.count > limit {
                    throw CoordinatorError.invalidInput("\(r.origin): record \(id) has \(r.text.count) bytes; a DP-SGD store takes records of at most \(limit) bytes (\(RecordBatch.maxRowsPerPass) context windows: all of a record's windows are clipped together, in memory); split it into several records")
                }
                return PlacedRecord(record: r, id: id,
                                    placement: Placement.place(id: id, seed: config.seed, shards: config.shards, slices: config.slices,
                                                               appendedSlice: appended, holdoutFraction: holdout),
                                    sha256: Digest.sha256Hex(r.text))
            }
            defer { stream.cancelAndWait() }
            var perShard = [Int](repeating: 0, count: config.shards)
            var parsed = 0, held = 0, added = 0, skipped = 0
            while let batch = try stream.next() {
                for pr in batch {
                    parsed += 1
                    let (r, id, p) = (pr.record, pr.id, pr.placement)
                    guard try catalog.addRecordIfNew(id: id, text: r.text, sha256: pr.sha256, group: r.group ?? group ?? "default",
                                                     ingest: ingestID, shard: p.shard, slice: p.slice, holdout: p.holdout) else {
                        if skipDuplicates { skipped += 1; continue }
                        // The id is taken: by an earlier line of this input, or by an earlier ingest.
                        if try catalog.record(id: id)?.ingest == ingestID {
                            let first = try firstOrigin(of: id, in: source) ?? "an earlier line"
                            throw CoordinatorError.duplicateID("\(r.origin): duplicate id \(id) (first at \(first)); use --skip-duplicates to skip repeats")
                        }
                        throw CoordinatorError.duplicateID("\(r.origin): id \(id) is already in the store; use --skip-duplicates to skip it")
                    }
                    added += 1
                    if p.holdout { held += 1 } else { perShard[p.shard] += 1 }
                    if added % 100_000 == 0 {
                        progress?(IngestProgress(inserted: added, bytesRead: stream.bytesRead, totalBytes: totalBytes))
                    }
                }
            }
            guard parsed > 0 else {
                throw CoordinatorError.invalidInput("\(source.description): no records found (empty input)")
            }
            guard added > 0 else {
                throw CoordinatorError.invalidInput("every record is already in the store (nothing to ingest)")
            }
            try catalog.setIngestRecordCount(ingestID, added)
            if added % 100_000 != 0 { progress?(IngestProgress(inserted: added, bytesRead: totalBytes, totalBytes: totalBytes)) }
            try recordChainsAfterIngest(before: chainsBefore, added: perShard)
            FaultInjection.ingest(at: .beforeCommit)
            return IngestReport(ingest: ingestID, added: added, skipped: skipped, holdout: held,
                                appendedSlice: appended, perShard: perShard)
        }
        FaultInjection.ingest(at: .afterCommit)
        return report
    }

    /// Where `id` first occurs in the input (the error path of a repeated id:
    /// the input is read again rather than every id's origin kept in memory).
    private func firstOrigin(of id: String, in source: IngestSource) throws -> String? {
        struct Found: Error { let origin: String }
        do {
            try RecordParser.forEach(source) { r in
                if (r.id ?? RecordParser.derivedID(r.text)) == id { throw Found(origin: r.origin) }
            }
        } catch let f as Found { return f.origin }
        return nil
    }
}
