import Foundation

/// A deletion request as its caller sees it: the records it named, its
/// state, and once done the receipt of the retraining that completed it.
public struct DeletionRequest: Codable, Sendable {
    public let id: Int
    public let reason: String?
    public let state: DeletionRequestState
    public let records: [String]
    public let requestedAt: String
    public let completedAt: String?
    public let receipt: DeletionReceipt?
}

public enum DeletionSubmission: Sendable {
    /// Durable and quarantined; `alreadyDeleted` lists ids an earlier request had deleted.
    case queued(DeletionRequest, alreadyDeleted: [String])
    /// Every id was deleted by earlier requests: their receipt, nothing changed.
    case alreadyDeleted(DeletionReceipt)
}

/// Deletion as a durable queue: `submitDeletion` makes a request durable
/// (records' text erased, shards quarantined: from then on no query uses
/// them) without retraining; `processDeletions` retrains every shard with a
/// pending deletion once, however many requests named it, and completes the
/// requests. A process killed at any point loses nothing acknowledged: the
/// next `processDeletions` (or `sisa train`) resumes from the checkpoints.
extension Store {
    public func submitDeletion(ids: [String], reason: String?) throws -> DeletionSubmission {
        guard !ids.isEmpty else { throw CoordinatorError.invalidInput("no record ids given") }
        let unique = Array(NSOrderedSet(array: ids)) as! [String]
        var infos: [RecordInfo] = []
        var unknown: [String] = [], already: [String] = []
        for id in unique {
            switch try catalog.record(id: id) {
            case let r? where r.status == .live: infos.append(r)
            case _?: already.append(id)
            case nil: unknown.append(id)
            }
        }
        // An unknown id changes nothing, whatever else the request holds.
        guard unknown.isEmpty else { throw CoordinatorError.unknownIDs(unknown) }
        // Deleting again is not an error: the answer is the earlier receipt.
        guard !infos.isEmpty else { return .alreadyDeleted(try existingReceipt(for: already)) }
        let requestID = try catalog.transaction {
            let id = try catalog.addDeletionRequest(reason: reason)
            // The opt-in output filter keeps fingerprints (never bytes) of what is deleted.
            var texts: [[UInt8]] = []
            for r in infos { if let t = try catalog.text(id: r.id) { texts.append(t) } }
            try fingerprintForFilter(texts)
            for r in infos { try catalog.recordDeletion(r, request: id) }
            return id
        }
        // A cluster run's work orders hold record text too (first: truncating
        // the log below can fail while readers hold it, and must not skip this).
        try WorkFolder(store: url).purge(ids: Set(infos.map(\.id)))
        // The text is gone from the live catalog; truncate the log now so its
        // bytes leave the files too, whatever happens to the retraining.
        try purge()
        return .queued(try deletionRequest(id: requestID)!, alreadyDeleted: already)
    }

    public func deletionRequest(id: Int) throws -> DeletionRequest? {
        guard let r = try catalog.deletionRequest(id: id) else { return nil }
        let receipt = try r.receipt.map { try JSONDecoder().decode(DeletionReceipt.self, from: Data($0.utf8)) }
        return DeletionRequest(id: id, reason: r.reason, state: r.state, records: r.records, requestedAt: r.requestedAt,
                               completedAt: r.completedAt, receipt: receipt)
    }

    /// Retrains every shard with a pending deletion, once, and completes the
    /// requests. Nil when nothing was pending. Before any training there is
    /// nothing to retrain: the deletions complete at once (training now would
    /// freeze the slice layout and break equality with a never-ingested store).
    @discardableResult
    public func processDeletions(jobs: Int = 1, threads: Int? = nil, executor: ShardExecutor? = nil,
                                 progress: (@Sendable (TrainProgress) -> Void)? = nil) throws -> TrainReport? {
        let pending = try catalog.pendingDeletions()
        guard !pending.isEmpty else { return nil }
        guard try catalog.trainingStarted() else {
            try catalog.transaction {
                try catalog.completePendingDeletions(upTo: pending.last!.seq, receipt: nil)
                try catalog.releaseQuarantines()
            }
            return nil
        }
        try catalog.transaction { try catalog.markRequestsRetraining() }
        do {
            let shards = Set(pending.filter { !$0.holdout }.map(\.shard))
            return try train(onlyShards: shards, jobs: jobs, threads: threads, executor: executor, progress: progress)
        } catch {
            try? catalog.transaction { try catalog.markRequestsFailed() }
            throw error
        }
    }
}
