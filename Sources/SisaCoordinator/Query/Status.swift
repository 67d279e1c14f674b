import Foundation

public struct ShardStatus: Codable, Sendable {
    public let index: Int
    public let records: Int
    public let stages: Int
    public let stagesTrained: Int
    public let quarantined: Bool
    public let digest: String?
    /// Bytes on disk of this shard's checkpoints (compressed): on a base
    /// store, adapters and their optimizer state only.
    public let checkpointBytes: Int
    /// DP stores: the shard's epsilon at the store's delta (worst case, a
    /// record of slice 0, over the current plan); absent without DP.
    public let epsilon: Double?
    /// DP stores: the noise multiplier the shard trains with.
    public let noise: Double?
}

public struct StoreStatus: Codable, Sendable {
    public let store: String
    /// Live records (ingested, not deleted), holdout included.
    public let records: Int
    public let trainingRecords: Int
    public let holdoutRecords: Int
    public let deletedRecords: Int
    public let groups: [String: Int]
    public let shards: [ShardStatus]
    public let pendingDeletions: Int
    public let checkpoints: Int
    public let checkpointRawBytes: Int
    public let checkpointStoredBytes: Int
    public let compressionRatio: Double
    public let config: StoreConfig
    /// Bytes of the base kept in the store (STORE/base/); 0 for a byte-level store.
    public let baseBytes: Int
    /// Parameters each shard trains (its adapter's on a base store).
    public let trainableParameters: Int
    /// False when the checkpoints are of another numerics version than this build's
    /// (`config.numerics` vs `Numerics.version`): `sisa train --rebuild` is needed.
    public let numericsIsCurrent: Bool
}

extension Store {
    public func status() throws -> StoreStatus {
        let counts = try catalog.recordCounts()
        let states = try catalog.shardStates()
        let ckpts = try catalog.checkpoints()
        let known = Set(ckpts.map(\.key))
        var shards: [ShardStatus] = []
        for st in states {
            let p = try stageSummaries(shard: st.index)
            // Stages trained: the prefix of the current chain that has checkpoints.
            var trained = 0
            for s in p.stages { if known.contains(s.key) { trained += 1 } else { break } }
            shards.append(ShardStatus(index: st.index, records: counts.trainingPerShard[st.index] ?? 0,
                                      stages: p.stages.count, stagesTrained: trained, quarantined: st.quarantined,
                                      digest: st.digest,
                                      checkpointBytes: ckpts.filter { $0.shard == st.index }.reduce(0) { $0 + $1.storedBytes },
                                      epsilon: config.dp.map { dp in
                                          PrivateSchedule.epsilon(stages: p.stages.map { ($0.samplingRate, $0.steps) }, noise: p.noise ?? 0, delta: dp.delta)
                                      },
                                      noise: p.noise))
        }
        let raw = ckpts.reduce(0) { $0 + $1.rawBytes }, stored = ckpts.reduce(0) { $0 + $1.storedBytes }
        return StoreStatus(store: url.path, records: counts.live, trainingRecords: counts.training,
                           holdoutRecords: counts.holdout, deletedRecords: counts.deleted,
                           groups: counts.groups, shards: shards, pendingDeletions: try catalog.pendingDeletions().count,
                           checkpoints: ckpts.count, checkpointRawBytes: raw, checkpointStoredBytes: stored,
                           compressionRatio: stored > 0 ? Double(raw) / Double(stored) : 0, config: config,
                           baseBytes: config.base?.bytes ?? 0, trainableParameters: try models.trainableParameterCount(),
                           numericsIsCurrent: numericsIsCurrent || (ckpts.isEmpty && states.allSatisfy { $0.digest == nil }))
    }
}
