import Foundation

/// What a deletion did: the records, the shards and stages retrained, the
/// time taken and the new digests.
public struct DeletionReceipt: Codable, Sendable {
    public let records: [String]
    public let shards: [ShardTrainReport]
    public let seconds: Double
    public let checkpointsRemoved: Int
    /// True when `--defer` queued the retraining for the next `train`.
    public let pending: Bool
    /// Ids of the request that an earlier request had already deleted
    /// (their receipts are those of that request); absent when none.
    public var alreadyDeleted: [String]? = nil

    public init(records: [String], shards: [ShardTrainReport], seconds: Double, checkpointsRemoved: Int, pending: Bool,
                alreadyDeleted: [String]? = nil) {
        self.records = records
        self.shards = shards
        self.seconds = seconds
        self.checkpointsRemoved = checkpointsRemoved
        self.pending = pending
        self.alreadyDeleted = alreadyDeleted
    }

    func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try e.encode(self)
    }
}

extension Store {
    /// Deletes records exactly: `submitDeletion` (durable, text erased,
    /// shards quarantined, write-ahead log truncated), then, unless `deferRetrain`,
    /// `processDeletions`: each affected shard retrained once from the
    /// checkpoint before its earliest affected stage, every checkpoint
    /// trained on a deleted record removed.
    public func delete(ids: [String], deferRetrain: Bool = false, jobs: Int = 1, threads: Int? = nil,
                       executor: ShardExecutor? = nil,
                       progress: (@Sendable (TrainProgress) -> Void)? = nil) throws -> DeletionReceipt {
        let t0 = Date()
        // Retraining continues from checkpoints: refuse before changing anything
        // if they are of another numerics version (a deferred deletion retrains nothing).
        if !deferRetrain { try requireCurrentNumerics() }
        let request: DeletionRequest, already: [String]
        switch try submitDeletion(ids: ids, reason: nil) {
        case let .alreadyDeleted(receipt): return receipt
        case let .queued(r, a): (request, already) = (r, a)
        }
        let alreadyDeleted = already.isEmpty ? nil : already
        if deferRetrain {
            return DeletionReceipt(records: request.records, shards: [], seconds: Date().timeIntervalSince(t0),
                                   checkpointsRemoved: 0, pending: true, alreadyDeleted: alreadyDeleted)
        }
        let report = try processDeletions(jobs: jobs, threads: threads, executor: executor, progress: progress)
        return DeletionReceipt(records: request.records, shards: report?.shards ?? [], seconds: Date().timeIntervalSince(t0),
                               checkpointsRemoved: report?.checkpointsRemoved ?? 0, pending: false, alreadyDeleted: alreadyDeleted)
    }

    /// The receipt of records deleted by earlier requests: the stored receipt
    /// when they share one, else the union of theirs; a deferred one is pending.
    public func existingReceipt(for ids: [String]) throws -> DeletionReceipt {
        var stored: [String: DeletionReceipt] = [:]
        var pending = false
        for id in ids {
            guard let d = try catalog.deletion(record: id) else { throw CoordinatorError.unknownIDs([id]) }
            if d.status == .pending { pending = true }
            if let json = d.receipt, stored[json] == nil {
                stored[json] = try JSONDecoder().decode(DeletionReceipt.self, from: Data(json.utf8))
            }
        }
        let receipts = stored.keys.sorted().map { stored[$0]! }
        var records = receipts.flatMap(\.records)
        for id in ids where !records.contains(id) { records.append(id) }
        return DeletionReceipt(records: records, shards: receipts.flatMap(\.shards), seconds: receipts.reduce(0) { $0 + $1.seconds },
                               checkpointsRemoved: receipts.reduce(0) { $0 + $1.checkpointsRemoved },
                               pending: pending, alreadyDeleted: ids)
    }
}
