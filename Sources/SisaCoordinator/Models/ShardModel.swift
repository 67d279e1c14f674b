import Foundation
import SisaEngine

/// A shard's model as the coordinator uses it: the engine's model (a byte
/// GPT-2, or a base with this shard's adapter) and the store's record codec,
/// so that everything above works on record texts.
///
/// `@unchecked Sendable`: immutable once made. A shared instance (the
/// server's cache) is only read; work that writes activations runs on the
/// per-caller instances `sharing(pool:)` makes over the same weights.
public final class ShardModel: @unchecked Sendable {
    public let model: any LanguageModel
    public let codec: RecordCodec

    public init(model: any LanguageModel, codec: RecordCodec) {
        self.model = model
        self.codec = codec
    }

    /// The digest of what the shard trains: its adapter on a base store, its parameters otherwise.
    public var digest: String { model.digest }

    /// Per-record NLL of `<sep> tokens <sep>`, every token after the first predicted.
    public func score(_ records: [[UInt8]], perToken: Bool = false, batchSize: Int = 16) -> [RecordScore] {
        model.score(sequences: records.map(codec.sequence), perToken: perToken, batchSize: batchSize, pad: codec.separator)
    }

    /// Generates up to `maxTokens` tokens after `prompt`, until the separator; returns the bytes.
    public func generate(prompt: [UInt8], maxTokens: Int, sampler: inout Sampler) -> [UInt8] {
        let ids = model.generate(tokens: [codec.separator] + codec.encode(prompt), maxTokens: maxTokens, stop: [codec.separator],
                                 sampler: &sampler)
        return codec.decode(ids)
    }

    /// The record's token count as scored (`<sep> tokens <sep>` less the first).
    public func tokenCount(_ record: [UInt8]) -> Int { codec.encode(record).count + 1 }

    /// An inference instance over the same weights and adapter values, with
    /// activations of its own (one per concurrent query).
    public func sharing(pool: WorkerPool) -> ShardModel {
        let m = model.sharingWeights(pool: pool)
        if let a = model.adapter { m.attach(a.sharingValues()) }
        return ShardModel(model: m, codec: codec)
    }

    /// A copy whose trainable part (the adapter, or the weights) is its own,
    /// with gradients; a base's frozen weights stay shared. For approximate
    /// unlearning, which must leave the stored model as it is.
    public func trainableCopy(pool: WorkerPool) throws -> ShardModel {
        if let a = model.adapter {
            let m = model.sharingWeights(pool: pool)
            let copy = LoRAAdapter(config: a.config, targets: m.loraTargets, layers: m.layerCount, gradients: true)
            copy.parameters.values.copy(from: a.parameters.values)
            m.attach(copy)
            return ShardModel(model: m, codec: codec)
        }
        return ShardModel(model: try model.copyingWeights(pool: pool, trainable: true), codec: codec)
    }

    /// Training FLOPs per token: a byte model's exact count (with attention);
    /// over a base, 6N for full fine-tuning, and for an adapter 4N (forward and
    /// the activations' backward through the frozen weights) plus 6 per
    /// adapter parameter. Attention's own terms are left out there.
    public var trainingFLOPsPerToken: Double {
        if let g = model as? GPT2Model, g.adapter == nil { return g.config.trainingFLOPsPerToken }
        let N = Double(model.weights.count)
        guard let a = model.adapter else { return 6 * N }
        return 4 * N + 6 * Double(a.parameters.count)
    }
}
