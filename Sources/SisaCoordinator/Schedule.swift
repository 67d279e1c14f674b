import Crypto
import Foundation
import SisaEngine

/// One training stage of one shard: stage r trains on slices 0...r,
/// continuing from stage r-1's state.
public struct StagePlan: Sendable {
    public let stage: Int
    /// Training records of slices 0...stage, in training order.
    public let ids: [String]
    /// The token stream: <end> r1 <end> r2 <end> ...
    public let stream: [Int32]
    public let steps: Int
    /// Chained hash of the configuration, the shard and every stage's ordered
    /// ids and step count so far: equal keys mean equal training states.
    public let key: String
}

public struct ShardPlan: Sendable {
    public let shard: Int
    public let stages: [StagePlan]
    public var totalSteps: Int { stages.reduce(0) { $0 + $1.steps } }
}

/// The SISA schedule, counted in optimizer steps: stage r gets
/// ceil(a * tokens(slices 0...r) / (batch * context)) steps with
/// a = 2 * epochs / (R + 1), or 0 steps when slice r holds nothing new.
/// Everything here is a function of the configuration and the stage's own
/// data: later stages never influence earlier ones.
public enum Schedule {
    public static func plan(shard: Int, config: StoreConfig, stageCount: Int,
                            records: [(id: String, slice: Int, text: [UInt8])]) -> ShardPlan {
        let order = records.map { ($0, Placement.hash64(config.seed, $0.id, "order")) }
            .sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0.id < $1.0.id }
            .map { $0.0 }
        var parent = Digest.sha256Hex(Array("sisa-stage|shard=\(shard)|".utf8) + [UInt8](config.canonicalJSON))
        var stages: [StagePlan] = []
        let tokensPerStep = Double(config.batch * config.model.context)
        for r in 0..<stageCount {
            let inStage = order.filter { $0.slice <= r }
            let hasNew = order.contains { $0.slice == r }
            var stream: [Int32] = [ModelConfig.endOfText]
            for rec in inStage {
                for b in rec.text { stream.append(Int32(b)) }
                stream.append(ModelConfig.endOfText)
            }
            let steps = hasNew ? max(1, Int((config.stageTokenMultiplier * Double(stream.count) / tokensPerStep).rounded(.up))) : 0
            let key: String
            if steps == 0 {
                key = parent
            } else {
                var h = SHA256()
                h.update(data: Data("\(parent)|stage=\(r)|steps=\(steps)|".utf8))
                for rec in inStage {
                    h.update(data: Data(rec.id.utf8))
                    h.update(data: [0])
                    h.update(data: Data(Digest.sha256Hex(rec.text).utf8))
                    h.update(data: [0x0A])
                }
                key = Digest.hex(h.finalize())
            }
            stages.append(StagePlan(stage: r, ids: inStage.map(\.id), stream: stream, steps: steps, key: key))
            parent = key
        }
        return ShardPlan(shard: shard, stages: stages)
    }

    /// The batches of a stage: `steps` batches of `batch` random windows of
    /// context+1 tokens from the stage's stream, drawn from a generator seeded
    /// by the stage key (so by the stage's data alone).
    public static func batch(for stage: StagePlan, step: Int, config: StoreConfig, rng: inout Xoshiro256) -> Batch {
        let T = config.model.context
        let s = stage.stream
        var rows: [[Int32]] = []
        rows.reserveCapacity(config.batch)
        for _ in 0..<config.batch {
            if s.count <= T + 1 {
                rows.append(s)
            } else {
                let off = rng.nextInt(below: s.count - T)
                rows.append(Array(s[off..<(off + T + 1)]))
            }
        }
        return Batch(rows: rows, T: T, padTo: config.batch)
    }

    static func stageRNG(_ stage: StagePlan) -> Xoshiro256 {
        Xoshiro256(seed: Placement.hash64(0, stage.key, "batches"))
    }

    /// Initial parameters of a shard's model (before stage 0).
    static func initSeed(config: StoreConfig, shard: Int) -> UInt64 {
        Placement.hash64(config.seed, "shard-\(shard)", "init")
    }
}
