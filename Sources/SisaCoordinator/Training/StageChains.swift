import Foundation
import SisaEngine

/// A shard's stage chain (keys, steps) as data: `train` records it in the
/// catalog under a fingerprint of what it depends on, and `status` reads it
/// while the fingerprint is current instead of replanning from every record.
extension Store {
    /// One stage of a shard's chain as `status` reads it (no record ids).
    public struct StageSummary: Codable, Sendable, Equatable {
        public let stage: Int
        public let key: String
        public let steps: Int
        public let streamCount: Int
        public let samplingRate: Double

        init(_ s: StagePlan) {
            (stage, key, steps, streamCount, samplingRate) = (s.stage, s.key, s.steps, s.stream.count, s.samplingRate)
        }

        init(_ l: Schedule.StageLink) {
            (stage, key, steps, streamCount, samplingRate) = (l.stage, l.key, l.steps, l.streamCount, l.samplingRate)
        }

        init(stage: Int, key: String, steps: Int, streamCount: Int, samplingRate: Double) {
            (self.stage, self.key, self.steps, self.streamCount, self.samplingRate) = (stage, key, steps, streamCount, samplingRate)
        }
    }

    struct StoredChain: Codable {
        let fingerprint: String
        let stages: [StageSummary]
        let noise: Double?
    }

    /// A shard's stage keys and steps without its token streams. On a byte
    /// store they come from the records' digests and lengths in the catalog,
    /// no text read; on a base store, whose token counts need the tokenizer,
    /// from the full plan.
    public func stageChain(shard: Int) throws -> (stages: [Schedule.StageLink], noise: Double?) {
        guard try models.codec().isBytes else {
            let p = try plan(shard: shard)
            return (p.stages.map { Schedule.StageLink(stage: $0.stage, ids: $0.ids, streamCount: $0.stream.count, steps: $0.steps,
                                                      samplingRate: $0.samplingRate, key: $0.key) }, p.noise)
        }
        let records = try catalog.trainingRecordDigests(shard: shard).map { ($0.id, $0.slice, $0.sha256, $0.bytes) }
        return Schedule.stageChain(shard: shard, config: config, stageCount: try stageCount(), records: records)
    }

    /// The state of the catalog a shard's chain is a function of: the
    /// configuration (numerics included), the stage count and `Catalog.chainInputs`.
    func chainFingerprint(shard: Int) throws -> String {
        let inputs = try catalog.chainInputs(shard: shard)
        return "\(Digest.sha256Hex(config.canonicalJSON))|stages=\(try stageCount())|seq=\(inputs.maxSeq)|deleted=\(inputs.deleted)"
    }

    private static func chainMetaKey(_ shard: Int) -> String { "chain.\(shard)" }

    /// The chain `train` recorded for this shard, if it is for the records as they are now.
    func currentRecordedChain(shard: Int) throws -> StoredChain? {
        guard let json = try catalog.meta(Store.chainMetaKey(shard)),
              let stored = try? JSONDecoder().decode(StoredChain.self, from: Data(json.utf8)) else { return nil }
        return stored.fingerprint == (try chainFingerprint(shard: shard)) ? stored : nil
    }

    /// A shard's stage keys and steps, read from the catalog when `train`
    /// recorded them for the records as they are now (see `chainFingerprint`),
    /// else computed (`stageChain`).
    public func stageSummaries(shard: Int) throws -> (stages: [StageSummary], noise: Double?) {
        if let stored = try currentRecordedChain(shard: shard) { return (stored.stages, stored.noise) }
        let c = try stageChain(shard: shard)
        return (c.stages.map(StageSummary.init), c.noise)
    }

    /// Records a plan's chain under the fingerprint read before the plan was made
    /// (if the records changed in between, the fingerprint no longer matches and
    /// the record is ignored: never a stale chain).
    func recordChain(_ plan: ShardPlan, fingerprint: String) throws {
        try recordChain(shard: plan.shard, StoredChain(fingerprint: fingerprint, stages: plan.stages.map(StageSummary.init), noise: plan.noise))
    }

    /// Records a chain read or computed without a full plan (`stageSummaries`).
    func recordChain(shard: Int, stages: [StageSummary], noise: Double?, fingerprint: String) throws {
        try recordChain(shard: shard, StoredChain(fingerprint: fingerprint, stages: stages, noise: noise))
    }

    private func recordChain(shard: Int, _ stored: StoredChain) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try catalog.setMeta(Store.chainMetaKey(shard), String(decoding: try encoder.encode(stored), as: UTF8.self))
    }

    /// Inside an ingest's transaction, after its records are in: records every
    /// shard's chain for the records as they now are, so that `status` on a
    /// store not yet trained reads chains too. `before` holds the chains that
    /// were current before the ingest, `added` the new training records per
    /// shard.
    /// - A shard that got no record keeps its chain: the same stages, plus a
    ///   stage of 0 steps (whose key is its parent's) for an appended slice.
    ///   Under DP the noise may be fitted to the whole plan, so it is recomputed.
    /// - A shard that got records is recomputed from the records' digests and
    ///   lengths (a byte store: no text read). On a base store, whose token
    ///   counts need the tokenizer, it is left to `train` (status computes it).
    func recordChainsAfterIngest(before: [StoredChain?], added: [Int]) throws {
        let stages = try stageCount()
        let bytes = try models.codec().isBytes
        let config = self.config
        // Shards whose chain must be computed: each one's records are read here
        // (this thread owns the transaction) while the previous one's chain is
        // hashed on a second thread, so reading and hashing overlap.
        var inFlight: (shard: Int, fingerprint: String, done: DispatchGroup, result: ComputedChain)?
        func finishInFlight() throws {
            guard let f = inFlight else { return }
            f.done.wait()
            let c = f.result.chain!
            try recordChain(shard: f.shard, StoredChain(fingerprint: f.fingerprint, stages: c.stages.map(StageSummary.init), noise: c.noise))
            inFlight = nil
        }
        for shard in 0..<config.shards {
            let fingerprint = try chainFingerprint(shard: shard)
            if added[shard] == 0, config.dp == nil, let old = before[shard], let last = old.stages.last, old.stages.count <= stages {
                var kept = old.stages
                for r in old.stages.count..<stages {
                    kept.append(StageSummary(stage: r, key: kept.last!.key, steps: 0, streamCount: last.streamCount, samplingRate: 0))
                }
                try recordChain(shard: shard, StoredChain(fingerprint: fingerprint, stages: kept, noise: old.noise))
            } else if bytes {
                let records = try catalog.trainingRecordDigests(shard: shard).map { ($0.id, $0.slice, $0.sha256, $0.bytes) }
                try finishInFlight()
                let result = ComputedChain(), done = DispatchGroup()
                DispatchQueue.global().async(group: done) {
                    result.chain = Schedule.stageChain(shard: shard, config: config, stageCount: stages, records: records)
                }
                inFlight = (shard, fingerprint, done, result)
            }
        }
        try finishInFlight()
    }

    /// A chain computed on another thread. `@unchecked Sendable`: written once
    /// by that thread before its DispatchGroup leaves, read only after `wait()`.
    private final class ComputedChain: @unchecked Sendable {
        var chain: (stages: [Schedule.StageLink], noise: Double?)?
    }

    /// Whether `status` reads this shard's chain from the catalog (recorded by
    /// `train` for the records as they are now).
    public func chainIsRecorded(shard: Int) throws -> Bool { try currentRecordedChain(shard: shard) != nil }

    /// The consistency check of the recorded chains (`sisa verify --plans`):
    /// each current one recomputed from the records' texts and compared.
    /// Returns the shards whose recorded chain differs, with what differs.
    public func verifyPlans() throws -> [(shard: Int, problem: String)] {
        var out: [(Int, String)] = []
        for shard in 0..<config.shards {
            guard let recorded = try currentRecordedChain(shard: shard) else { continue }
            let p = try plan(shard: shard)
            let fresh = p.stages.map(StageSummary.init)
            if recorded.stages != fresh || recorded.noise != p.noise {
                let i = Array(zip(recorded.stages, fresh)).firstIndex { $0.0 != $0.1 } ?? min(recorded.stages.count, fresh.count)
                out.append((shard, "the recorded chain differs from the records' plan from stage \(i) on"))
            }
        }
        return out
    }
}
