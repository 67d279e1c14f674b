import Foundation

/// Which projections get a low-rank adapter, of what rank and scale.
///
/// The update of a projection W [out, in] is ΔW = (alpha / rank) · B A
/// with A [rank, in] drawn from the seeded generator and B [out, rank]
/// starting at zero, so an untrained adapter leaves the base's outputs
/// unchanged (Hu et al. 2021; PEFT's defaults).
public struct LoRAConfiguration: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rank: Int
    public var alpha: Float
    /// Target names in the family's order (llama: q, k, v, o, gate, up, down;
    /// gpt2: attn, proj, fc, mlp_proj).
    public var targets: [String]
    /// Adapt only the top `layers` blocks (nil: every block).
    public var layers: Int?

    public init(rank: Int = 8, alpha: Float = 16, targets: [String] = ["q", "v"], layers: Int? = nil) {
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.layers = layers
    }

    public var scale: Float { alpha / Float(rank) }

    /// Parameters of this adapter over a model with these targets and `layerCount` blocks:
    /// rank x (in + out) per adapted projection.
    public func parameterCount(targets available: [LoRATarget], layerCount: Int) -> Int {
        let perLayer = available.filter { targets.contains($0.name) }.reduce(0) { $0 + rank * ($1.inFeatures + $1.outFeatures) }
        return perLayer * (layers ?? layerCount)
    }

    public var description: String {
        "LoRA r\(rank) alpha \(alpha) on \(targets.joined(separator: ","))" + (layers.map { " of the top \($0) layers" } ?? " of every layer")
    }

    /// The same configuration with its targets checked against a family's
    /// list and put in that list's order (so equal adapters have equal keys).
    public func resolved(against available: [String], layerCount: Int) throws -> LoRAConfiguration {
        guard rank >= 1, rank <= 1024 else { throw EngineError.invalidConfig("LoRA rank must be between 1 and 1024 (got \(rank))") }
        guard alpha.isFinite, alpha > 0 else { throw EngineError.invalidConfig("LoRA alpha must be positive (got \(alpha))") }
        guard !targets.isEmpty else { throw EngineError.invalidConfig("LoRA needs at least one target (\(available.joined(separator: ",")))") }
        for t in targets where !available.contains(t) {
            throw EngineError.invalidConfig("LoRA target '\(t)' is not a projection of this model (available: \(available.joined(separator: ",")))")
        }
        if let k = layers {
            guard k >= 1, k <= layerCount else {
                throw EngineError.invalidConfig("--lora-layers must be between 1 and \(layerCount) (got \(k))")
            }
        }
        var c = self
        c.targets = available.filter { targets.contains($0) }
        if c.layers == layerCount { c.layers = nil }
        return c
    }
}

/// One projection a family offers for adaptation: its name, its input and
/// output widths, and where its outputs sit in the (possibly fused) product
/// the model computes (q, k and v share one product in llama).
public struct LoRATarget: Sendable, Hashable {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    /// Which of the family's products this target adds to.
    public let product: Int
    /// First column of this target's outputs inside that product.
    public let column: Int
    /// The Hugging Face module path in layer `l`, for tensor names.
    public let module: String

    public init(name: String, inFeatures: Int, outFeatures: Int, product: Int, column: Int, module: String) {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.product = product
        self.column = column
        self.module = module
    }
}
