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
        var unknown: [String] = [], already: [String] = []
        for id in unique {
            switch try catalog.record(id: id)?.status {
            case .live?: infos.append(try catalog.record(id: id)!)
            case .deleted?: already.append(id)
            case nil: unknown.append(id)
            }
        }
        // An unknown id changes nothing, whatever else the request holds.
        guard unknown.isEmpty else { throw CoordinatorError.unknownIDs(unknown) }
        // Deleting again is not an error: the answer is the earlier receipt.
        guard !infos.isEmpty else { return try existingReceipt(for: already) }
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
            return DeletionReceipt(records: infos.map(\.id), shards: [], seconds: Date().timeIntervalSince(t0),
                                   checkpointsRemoved: 0, pending: true, alreadyDeleted: already.isEmpty ? nil : already)
        }
        guard try catalog.trainingStarted() else {
            // Nothing was ever trained: nothing to retrain. Training now would
            // freeze the slice layout and break equality with a store that
            // never saw the records.
            try catalog.transaction {
                try catalog.completePendingDeletions(receipt: nil)
                try catalog.releaseQuarantines()
            }
            return DeletionReceipt(records: infos.map(\.id), shards: [], seconds: Date().timeIntervalSince(t0),
                                   checkpointsRemoved: 0, pending: false, alreadyDeleted: already.isEmpty ? nil : already)
        }
        // Every shard with a pending deletion of a training record (this
        // request's and any deferred ones).
        let shards = Set(try catalog.pendingDeletions().filter { !$0.holdout }.map(\.shard))
        let report = try train(onlyShards: shards, jobs: jobs, threads: threads, progress: progress)
        return DeletionReceipt(records: infos.map(\.id), shards: report.shards, seconds: Date().timeIntervalSince(t0),
                               checkpointsRemoved: report.checkpointsRemoved, pending: false,
                               alreadyDeleted: already.isEmpty ? nil : already)
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
