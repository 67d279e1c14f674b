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
    /// Offset in `stream` of each record's leading <end>, in training order.
    public let recordStarts: [Int]
    /// DP-SGD: the probability that a step samples a given record (0 without DP).
    public let samplingRate: Double
    /// Chained hash of the configuration, the shard and every stage's ordered
    /// ids and step count so far: equal keys mean equal training states.
    public let key: String
}

public struct ShardPlan: Sendable {
    public let shard: Int
    public let stages: [StagePlan]
    /// DP-SGD: the noise multiplier this shard trains with (fixed, or fitted
    /// to its plan for a target epsilon); nil without DP.
    public let noise: Double?
    public var totalSteps: Int { stages.reduce(0) { $0 + $1.steps } }
}

/// The SISA schedule, counted in optimizer steps: stage r gets
/// ceil(a * tokens(slices 0...r) / (batch * context)) steps with
/// a = 2 * epochs / (R + 1), or 0 steps when slice r holds nothing new.
/// Everything here is a function of the configuration and the stage's own
/// data: later stages never influence earlier ones. (Under DP with a target
/// epsilon the noise is fitted to the whole plan and enters every key, so
/// a change anywhere retrains the shard from its start.)
public enum Schedule {
    public static func plan(shard: Int, config: StoreConfig, stageCount: Int,
                            records: [(id: String, slice: Int, text: [UInt8])], codec: RecordCodec = .bytes) -> ShardPlan {
        // Each record's tokens once (a base's tokenizer is the costly part of a plan).
        let encoded = codec.isBytes ? [:] : Dictionary(records.map { ($0.id, codec.encode($0.text)) }, uniquingKeysWith: { a, _ in a })
        let byID = Dictionary(records.map { ($0.id, $0.text) }, uniquingKeysWith: { a, _ in a })
        let chain = stageChain(shard: shard, config: config, stageCount: stageCount,
                               records: records.map { ($0.id, $0.slice, Digest.sha256Hex($0.text), encoded[$0.id]?.count ?? $0.text.count) })
        var stages: [StagePlan] = []
        for link in chain.stages {
            var stream: [Int32] = [codec.separator]
            var starts: [Int] = []
            for id in link.ids {
                starts.append(stream.count - 1)
                if let tokens = encoded[id] { stream += tokens } else { for b in byID[id]! { stream.append(Int32(b)) } }
                stream.append(codec.separator)
            }
            precondition(stream.count == link.streamCount, "a stage's stream and its count disagree")
            stages.append(StagePlan(stage: link.stage, ids: link.ids, stream: stream, steps: link.steps, recordStarts: starts,
                                    samplingRate: link.samplingRate, key: link.key))
        }
        return ShardPlan(shard: shard, stages: stages, noise: chain.noise)
    }

    /// One stage of a shard's chain without its token stream: what `status`
    /// and the consistency checks need, computed from each record's id,
    /// slice, text digest and token count alone.
    public struct StageLink: Sendable, Equatable {
        public let stage: Int
        public let ids: [String]
        /// Tokens of the stage's stream: 1 + the sum over its records of (tokens + 1).
        public let streamCount: Int
        public let steps: Int
        public let samplingRate: Double
        public let key: String
    }

    /// The stage keys and step counts of a shard, from record metadata (the
    /// text's sha256 hex and its token count under the store's codec). `plan`
    /// goes through this too, so the two cannot disagree.
    public static func stageChain(shard: Int, config: StoreConfig, stageCount: Int,
                                  records: [(id: String, slice: Int, sha256: String, tokens: Int)]) -> (stages: [StageLink], noise: Double?) {
        let order = records.map { ($0, Placement.hash64(config.seed, $0.id, "order")) }
            .sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0.id < $1.0.id }
            .map { $0.0 }
        var parent = Digest.sha256Hex(Array("sisa-stage|shard=\(shard)|".utf8) + [UInt8](config.canonicalJSON))
        let tokensPerStep = Double(config.batch * config.context)
        // Record counts and steps first: under DP the noise depends on all stages.
        var layouts: [(inStage: [(id: String, slice: Int, sha256: String, tokens: Int)], streamCount: Int, steps: Int, q: Double)] = []
        for r in 0..<stageCount {
            let inStage = order.filter { $0.slice <= r }
            let hasNew = order.contains { $0.slice == r }
            let streamCount = 1 + inStage.reduce(0) { $0 + $1.tokens + 1 }
            let steps: Int, q: Double
            if !hasNew {
                (steps, q) = (0, 0)
            } else if config.dp != nil {
                (steps, q) = (PrivateSchedule.steps(records: inStage.count, config: config),
                              PrivateSchedule.samplingRate(records: inStage.count, batch: config.batch))
            } else {
                (steps, q) = (max(1, Int((config.stageTokenMultiplier * Double(streamCount) / tokensPerStep).rounded(.up))), 0)
            }
            layouts.append((inStage, streamCount, steps, q))
        }
        var noise: Double?
        if let dp = config.dp {
            noise = dp.noise ?? PrivateSchedule.fitNoise(stages: layouts.map { ($0.q, $0.steps) },
                                                             target: dp.targetEpsilon!, delta: dp.delta)
        }
        var links: [StageLink] = []
        for (r, l) in layouts.enumerated() {
            let key: String
            if l.steps == 0 {
                key = parent
            } else {
                var h = SHA256()
                h.update(data: Data("\(parent)|stage=\(r)|steps=\(l.steps)|".utf8))
                if let noise { h.update(data: Data("noise=\(noise)|".utf8)) }
                // Straight from each string's UTF-8 storage (no copies): a plan hashes every record of every stage.
                for rec in l.inStage {
                    var (id, digest) = (rec.id, rec.sha256)
                    id.withUTF8 { h.update(bufferPointer: UnsafeRawBufferPointer($0)) }
                    h.update(data: [0])
                    digest.withUTF8 { h.update(bufferPointer: UnsafeRawBufferPointer($0)) }
                    h.update(data: [0x0A])
                }
                key = Digest.hex(h.finalize())
            }
            links.append(StageLink(stage: r, ids: l.inStage.map(\.id), streamCount: l.streamCount, steps: l.steps,
                                   samplingRate: l.q, key: key))
            parent = key
        }
        return (links, noise)
    }

    /// The batches of a stage: `steps` batches of `batch` random windows of
    /// context+1 tokens from the stage's stream, drawn from a generator seeded
    /// by the stage key (so by the stage's data alone).
    public static func batch(for stage: StagePlan, step: Int, config: StoreConfig, rng: inout Xoshiro256) -> Batch {
        let T = config.context
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
