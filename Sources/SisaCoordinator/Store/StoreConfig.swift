import Foundation
import SisaEngine

/// Everything that determines the trained models. Immutable once training starts.
public struct StoreConfig: Codable, Equatable, Sendable {
    public var shards: Int
    public var slices: Int
    /// The byte-level model every shard trains from scratch (nil on a base store).
    public var model: GPT2Configuration?
    public var optimizer: OptimizerConfig
    public var batch: Int
    /// Epochs over a whole shard, spread over its stages by the SISA schedule.
    public var epochs: Double
    public var seed: UInt64
    /// The numerics version (`Numerics.version`) the store's checkpoints are
    /// computed under. It is part of every checkpoint key, and training,
    /// deletion, verification and comparison refuse to continue from
    /// checkpoints of another version (`sisa train --rebuild` moves a store
    /// to this build's version). Stores from before it was recorded read as 1.
    public var numerics: Int
    /// DP-SGD training (nil: ordinary training). Absent from the canonical
    /// JSON of stores without it, so their checkpoint keys are unchanged.
    public var dp: DPConfig?
    /// A pretrained base every shard adapts (nil: a byte-level store). Its
    /// sha256 is part of the canonical JSON, and so of every checkpoint key;
    /// absent from byte stores' JSON, whose keys are unchanged.
    public var base: BaseStoreConfig?

    public init(shards: Int, slices: Int, model: GPT2Configuration?, optimizer: OptimizerConfig = StoreConfig.defaultOptimizer,
                batch: Int = 16, epochs: Double = 2, seed: UInt64 = 0, dp: DPConfig? = nil, base: BaseStoreConfig? = nil) {
        self.numerics = Numerics.version
        self.dp = dp
        self.base = base
        self.shards = shards
        self.slices = slices
        self.model = model
        self.optimizer = optimizer
        self.batch = batch
        self.epochs = epochs
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey { case shards, slices, model, optimizer, batch, epochs, seed, numerics, dp, base }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        shards = try c.decode(Int.self, forKey: .shards)
        slices = try c.decode(Int.self, forKey: .slices)
        model = try c.decodeIfPresent(GPT2Configuration.self, forKey: .model)
        optimizer = try c.decode(OptimizerConfig.self, forKey: .optimizer)
        batch = try c.decode(Int.self, forKey: .batch)
        epochs = try c.decode(Double.self, forKey: .epochs)
        seed = try c.decode(UInt64.self, forKey: .seed)
        numerics = try c.decodeIfPresent(Int.self, forKey: .numerics) ?? 1
        dp = try c.decodeIfPresent(DPConfig.self, forKey: .dp)
        base = try c.decodeIfPresent(BaseStoreConfig.self, forKey: .base)
        guard (model == nil) != (base == nil) else {
            throw DecodingError.dataCorruptedError(forKey: .base, in: c, debugDescription: "a store has either a byte-level model or a base")
        }
    }

    /// The training window in tokens (bytes on a byte-level store).
    public var context: Int { base?.context ?? model!.context }

    /// Warm-up then constant: a stage's learning rates never depend on how
    /// many stages or steps follow it (a cosine over the total would).
    public static var defaultOptimizer: OptimizerConfig {
        var o = OptimizerConfig()
        o.learningRate = 2e-3
        o.warmupSteps = 20
        o.schedule = .constant
        return o
    }

    /// SISA schedule multiplier: stage r trains a x (tokens in slices 0..r) tokens,
    /// which sums to `epochs` passes over the shard (REFERENCE.md section 1).
    public var stageTokenMultiplier: Double { 2 * epochs / Double(slices + 1) }

    public func validate() throws {
        guard shards >= 1, shards <= 1024 else { throw CoordinatorError.invalidInput("--shards must be between 1 and 1024") }
        guard slices >= 1, slices <= 1024 else { throw CoordinatorError.invalidInput("--slices must be between 1 and 1024") }
        guard batch >= 1 else { throw CoordinatorError.invalidInput("--batch must be >= 1") }
        guard epochs > 0, epochs <= 10_000 else { throw CoordinatorError.invalidInput("--epochs must be in (0, 10000]") }
        guard batch <= 4096 else { throw CoordinatorError.invalidInput("--batch must be at most 4096") }
        guard (model == nil) != (base == nil) else { throw CoordinatorError.invalidInput("a store has either a byte-level model or a base") }
        if let model {
            guard model.layers <= 64, model.dim <= 4096, model.context <= 8192, model.heads <= model.dim else {
                throw CoordinatorError.invalidInput("model too large for this engine (layers <= 64, dim <= 4096, context <= 8192)")
            }
            guard model.vocab == ByteTokenizer.vocabularySize else {
                throw CoordinatorError.invalidInput("a byte-level store's model has vocabulary 257 (got \(model.vocab))")
            }
            do { try model.validate() } catch { throw CoordinatorError.invalidInput("\(error)") }
        }
        if let base {
            try base.validate()
            guard dp == nil else {
                throw CoordinatorError.invalidInput("DP-SGD is not available on a base store: its per-record gradient norms are implemented for the byte-level model's layers, not for LoRA's (see the README)")
            }
        }
        guard optimizer.learningRate > 0 else { throw CoordinatorError.invalidInput("--lr must be > 0") }
        guard optimizer.schedule == .constant else {
            throw CoordinatorError.invalidInput("the SISA store needs a constant schedule after warm-up")
        }
        try dp?.validate()
    }

    /// Canonical bytes (sorted keys) for hashing into checkpoint keys.
    public var canonicalJSON: Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try! e.encode(self)
    }
}
