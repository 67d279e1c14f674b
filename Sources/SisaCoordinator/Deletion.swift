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

    func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try e.encode(self)
    }
}

extension Store {
    /// Deletes records exactly. In one transaction: the records are marked
    /// deleted and their text and hash erased, the requests are logged and
    /// the affected shards quarantined (queries leave them out); with the output
/// filter enabled, their windows' fingerprints are added. Then, unless
    /// `deferRetrain`, each affected shard is retrained once from the
    /// checkpoint before its earliest affected stage, every checkpoint trained
    /// on a deleted record is removed, and the catalog is vacuumed.
    public func delete(ids: [String], deferRetrain: Bool = false, jobs: Int = 1, threads: Int? = nil,
                       progress: (@Sendable (TrainProgress) -> Void)? = nil) throws -> DeletionReceipt {
        guard !ids.isEmpty else { throw CoordinatorError.invalidInput("no record ids given") }
        let unique = Array(NSOrderedSet(array: ids)) as! [String]
        var infos: [RecordInfo] = []
        var unknown: [String] = []
        for id in unique {
            if let r = try catalog.record(id: id), r.status == .live { infos.append(r) } else { unknown.append(id) }
        }
        guard unknown.isEmpty else { throw CoordinatorError.unknownIDs(unknown) }
        // Retraining continues from checkpoints: refuse before changing anything
        // if they are of another numerics version (a deferred deletion retrains nothing).
        if !deferRetrain { try requireCurrentNumerics() }
        let t0 = Date()
        try catalog.transaction {
            // The opt-in output filter keeps fingerprints (never bytes) of what is deleted.
            var texts: [[UInt8]] = []
            for r in infos { if let t = try catalog.text(id: r.id) { texts.append(t) } }
            try fingerprintForFilter(texts)
            for r in infos { try catalog.recordDeletion(r) }
        }
        // The text is gone from the live catalog; vacuum now so its bytes leave the
        // files too, whatever happens to the retraining below.
        try purge()
        if deferRetrain {
            return DeletionReceipt(records: unique, shards: [], seconds: Date().timeIntervalSince(t0),
                                   checkpointsRemoved: 0, pending: true)
        }
        guard try catalog.trainingStarted() else {
            // Nothing was ever trained: nothing to retrain. Training now would
            // freeze the slice layout and break equality with a store that
            // never saw the records.
            try catalog.transaction {
                try catalog.completePendingDeletions(receipt: nil)
                try catalog.releaseQuarantines()
            }
            return DeletionReceipt(records: unique, shards: [], seconds: Date().timeIntervalSince(t0),
                                   checkpointsRemoved: 0, pending: false)
        }
        // Every shard with a pending deletion of a training record (this
        // request's and any deferred ones).
        let shards = Set(try catalog.pendingDeletions().filter { !$0.holdout }.map(\.shard))
        let report = try train(onlyShards: shards, jobs: jobs, threads: threads, progress: progress)
        return DeletionReceipt(records: unique, shards: report.shards, seconds: Date().timeIntervalSince(t0),
                               checkpointsRemoved: report.checkpointsRemoved, pending: false)
    }
}
