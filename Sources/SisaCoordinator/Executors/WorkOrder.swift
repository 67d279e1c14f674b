import Foundation
import SisaEngine

/// Everything a cluster task needs to train one shard, written by the
/// coordinator into the store's `work/` folder (storage every node sees):
/// the configuration, the stages, the checkpoint to start from, and the
/// records' texts in training order. A worker never opens the catalog.
///
/// Orders hold record text, so they are data under the store's deletion
/// promise: removed once their results are recorded, and purged by any
/// deletion of a record they hold (`WorkFolder.purge`).
public struct WorkOrder: Codable, Sendable {
    public struct Record: Codable, Sendable {
        public let id: String
        public let slice: Int
        public let text: String
        public init(id: String, slice: Int, text: String) { (self.id, self.slice, self.text) = (id, slice, text) }
    }
    /// The base a base store's shards adapt: its path under the store (nodes
    /// mount the store, and so see the base) and the digest the worker checks
    /// before it trains.
    public struct Base: Codable, Sendable, Equatable {
        public let path: String
        public let sha256: String
        public init(path: String, sha256: String) { (self.path, self.sha256) = (path, sha256) }
    }
    /// Bumped when the layout changes; a worker refuses another.
    public static let format = 2
    public var format = WorkOrder.format
    /// The coordinator's run: results of other runs are not this run's.
    public let run: String
    public let shard: Int
    /// The store's configuration, as recorded (canonical JSON).
    public let config: String
    public let stageCount: Int
    /// The coordinator's stage keys: the worker plans again and must agree
    /// (a different `sisa` build on the nodes would not).
    public let stageKeys: [String]
    /// The recorded checkpoint to start from, with its checksum (nil: the
    /// shard's initial parameters). A retried task may find later ones.
    public let startKey: String?
    public let startChecksum: String?
    public let records: [Record]
    /// nil on a byte-level store.
    public let base: Base?

    public init(run: String, shard: Int, config: String, stageCount: Int, stageKeys: [String], startKey: String?,
                startChecksum: String?, records: [Record], base: Base? = nil) {
        (self.run, self.shard, self.config, self.stageCount, self.stageKeys) = (run, shard, config, stageCount, stageKeys)
        (self.startKey, self.startChecksum, self.records, self.base) = (startKey, startChecksum, records, base)
    }
}

/// What a worker wrote: its report and its checkpoints (key, checksum).
public struct WorkResult: Codable, Sendable {
    public struct Checkpoint: Codable, Sendable {
        public let key: String
        public let stage: Int
        public let checksum: String
    }
    public let run: String
    public let shard: Int
    public let report: ShardTrainReport
    public let checkpoints: [Checkpoint]
    public let host: String
}

/// A worker's latest progress, tagged with its run (a task of an earlier run
/// that outlived its coordinator must not pass for this one).
public struct WorkProgress: Codable, Sendable {
    public let run: String
    public let progress: TrainProgress
}

/// The store's `work/` folder: one order, progress and result file per shard
/// of the run in flight, the tasks' logs, the batch script, and the ids of
/// the jobs submitted (so a coordinator run after a killed one can cancel them).
public struct WorkFolder: Sendable {
    public let dir: URL
    public init(store: URL) { dir = store.appendingPathComponent("work") }

    public func order(_ shard: Int) -> URL { dir.appendingPathComponent("order-\(shard).json") }
    public func result(_ shard: Int) -> URL { dir.appendingPathComponent("result-\(shard).json") }
    public func progress(_ shard: Int) -> URL { dir.appendingPathComponent("progress-\(shard).json") }
    public func log(_ shard: Int) -> URL { dir.appendingPathComponent("task-\(shard).log") }
    var script: URL { dir.appendingPathComponent("job.sh") }
    var jobs: URL { dir.appendingPathComponent("jobs") }

    /// The store folder of an order file: orders live in `<store>/work/`, so
    /// a node that mounts the store elsewhere still finds its checkpoints.
    static func store(ofOrder order: URL) -> URL { order.deletingLastPathComponent().deletingLastPathComponent() }

    public func write<T: Encodable>(_ value: T, to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileIO.writeAtomically(try enc.encode(value), to: url.path)
    }

    static func read<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        guard let d = FileManager.default.contents(atPath: url.path) else {
            throw CoordinatorError.io("\(url.path): cannot read")
        }
        do { return try JSONDecoder().decode(type, from: d) } catch {
            throw CoordinatorError.corrupt("\(url.path): \(error)")
        }
    }

    /// Job ids recorded by earlier runs (left when a coordinator was killed).
    public func recordedJobs() -> [String] {
        guard let s = try? String(contentsOf: jobs, encoding: .utf8) else { return [] }
        return s.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    func recordJob(_ id: String) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let all = recordedJobs() + [id]
        try FileIO.writeAtomically(Data((all.joined(separator: "\n") + "\n").utf8), to: jobs.path)
    }

    /// Removes every order that holds one of `ids` (a deletion: their text
    /// must leave the disk now, not when the run ends). Returns the shards.
    @discardableResult
    public func purge(ids: Set<String>) throws -> [Int] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return [] }
        var purged: [Int] = []
        // Temp files of an order being written (or left by a killed coordinator) count too.
        for f in files where f.hasPrefix("order-") {
            let url = dir.appendingPathComponent(f)
            // An order that cannot be read is removed too: it may hold the text.
            let order = try? WorkFolder.read(WorkOrder.self, from: url)
            if order == nil || order!.records.contains(where: { ids.contains($0.id) }) {
                do { try FileManager.default.removeItem(at: url) } catch {
                    if FileManager.default.fileExists(atPath: url.path) { throw error }
                    continue   // removed meanwhile (the run ended)
                }
                purged.append(order?.shard ?? -1)
            }
        }
        return purged
    }

    /// Removes the folder (orders, results, progress, logs).
    func remove() throws {
        if FileManager.default.fileExists(atPath: dir.path) { try FileManager.default.removeItem(at: dir) }
    }

    /// Removes the orders and results only (their logs are kept for diagnosis).
    func removeData() {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return }
        for f in files where f.hasPrefix("order-") || f.hasPrefix("result-") || f.hasPrefix("progress-") {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(f))
        }
    }
}
