import Foundation

/// The shape of a Llama-family model (SmolLM/SmolLM2, TinyLlama, Llama 3.x):
/// RMSNorm, rotary position embeddings, a SwiGLU MLP, grouped-query
/// attention, and an output head tied to the embedding or separate.
/// Read from a Hugging Face `config.json` (`model_type: llama`) or from a
/// GGUF file's `llama.*` metadata.
public struct LlamaConfiguration: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var layers: Int
    /// Width of the residual stream (hidden_size).
    public var dim: Int
    public var heads: Int
    /// Key/value heads; each serves heads / kvHeads query heads.
    public var kvHeads: Int
    public var headDim: Int
    /// Width of the MLP (intermediate_size).
    public var ffDim: Int
    public var vocab: Int
    /// Longest sequence the model was trained for (max_position_embeddings).
    public var context: Int
    public var rmsEpsilon: Float
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    /// Per-frequency divisors of the rotary frequencies (GGUF `rope_freqs.weight`, Llama 3.1+).
    public var ropeFrequencyFactors: [Float]?
    public var tiedEmbeddings: Bool

    public struct RopeScaling: Codable, Equatable, Hashable, Sendable {
        /// "linear" or "llama3".
        public var type: String
        public var factor: Double
        public var lowFrequencyFactor: Double?
        public var highFrequencyFactor: Double?
        public var originalContext: Int?

        public init(type: String, factor: Double, lowFrequencyFactor: Double? = nil, highFrequencyFactor: Double? = nil,
                    originalContext: Int? = nil) {
            self.type = type
            self.factor = factor
            self.lowFrequencyFactor = lowFrequencyFactor
            self.highFrequencyFactor = highFrequencyFactor
            self.originalContext = originalContext
        }
    }

    public init(layers: Int, dim: Int, heads: Int, kvHeads: Int, headDim: Int? = nil, ffDim: Int, vocab: Int, context: Int,
                rmsEpsilon: Float = 1e-5, ropeTheta: Double = 10_000, ropeScaling: RopeScaling? = nil,
                ropeFrequencyFactors: [Float]? = nil, tiedEmbeddings: Bool) {
        self.layers = layers
        self.dim = dim
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim ?? (heads > 0 ? dim / heads : 0)
        self.ffDim = ffDim
        self.vocab = vocab
        self.context = context
        self.rmsEpsilon = rmsEpsilon
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.ropeFrequencyFactors = ropeFrequencyFactors
        self.tiedEmbeddings = tiedEmbeddings
    }

    /// Query, key and value widths: the fused projection's output columns.
    public var qWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
    public var qkvWidth: Int { qWidth + 2 * kvWidth }

    /// Largest shapes accepted from a file: they keep every size computed
    /// from a configuration far from Int overflow.
    public static let maxLayers = 256, maxDim = 16_384, maxVocab = 1 << 20, maxContext = 1 << 20, maxHeads = 512

    public func validate() throws {
        func bad(_ m: String) -> EngineError { .invalidConfig("llama: \(m) (got \(self))") }
        guard layers >= 1, dim >= 1, heads >= 1, kvHeads >= 1, headDim >= 2, ffDim >= 1, vocab >= 2, context >= 2 else {
            throw bad("every extent must be positive")
        }
        guard layers <= Self.maxLayers, dim <= Self.maxDim, ffDim <= 4 * Self.maxDim, vocab <= Self.maxVocab,
              context <= Self.maxContext, heads <= Self.maxHeads, headDim <= 1024 else {
            throw bad("model too large for this engine")
        }
        guard headDim % 2 == 0 else { throw bad("head size \(headDim) must be even for rotary embeddings") }
        guard heads % kvHeads == 0 else { throw bad("\(heads) query heads do not divide into \(kvHeads) key/value groups") }
        guard rmsEpsilon > 0, rmsEpsilon.isFinite else { throw bad("rms_norm_eps must be positive") }
        guard ropeTheta > 1, ropeTheta.isFinite, ropeTheta < 1e12 else { throw bad("rope_theta must be a finite base above 1") }
        if let s = ropeScaling {
            guard s.type == "linear" || s.type == "llama3" else { throw bad("rope scaling \(s.type) is not supported (linear, llama3)") }
            guard s.factor >= 1, s.factor.isFinite, s.factor < 1e6 else { throw bad("rope scaling factor must be at least 1") }
            if s.type == "llama3" {
                guard let lo = s.lowFrequencyFactor, let hi = s.highFrequencyFactor, let old = s.originalContext,
                      lo > 0, hi > lo, hi.isFinite, old >= 1 else {
                    throw bad("llama3 rope scaling needs low_freq_factor < high_freq_factor and original_max_position_embeddings")
                }
            }
        }
        if let f = ropeFrequencyFactors {
            guard f.count == headDim / 2, f.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw bad("rope frequency factors must be \(headDim / 2) positive numbers")
            }
        }
    }

    public var description: String {
        "llama L\(layers) C\(dim) H\(heads)/\(kvHeads)x\(headDim) F\(ffDim) V\(vocab) T\(context)\(tiedEmbeddings ? " tied" : "")"
    }

    /// Weights of the matrices and vectors, embedding (and head) included.
    public var parameterCount: Int { LlamaLayout(self).count }

    /// Training FLOPs per token with every weight trained (6 x parameters
    /// in the products, the embedding lookup aside, plus attention's
    /// 12 x layers x ctx x width for a context `ctx`).
    public func trainingFLOPsPerToken(context ctx: Int) -> Double {
        let lookup = tiedEmbeddings ? 0 : vocab * dim
        return 6 * Double(parameterCount - lookup) + 12 * Double(layers * ctx * qWidth)
    }

    // MARK: reading

    /// From a Hugging Face `config.json`.
    public init(json c: ModelConfigJSON) throws {
        let dim = try c.int("hidden_size"), heads = try c.int("num_attention_heads")
        if let act = try c.optionalString("hidden_act"), act != "silu" {
            throw c.fail("hidden_act \(act) is not supported (silu only)")
        }
        if try c.optionalBool("attention_bias") == true || c.optionalBool("mlp_bias") == true {
            throw c.fail("attention_bias and mlp_bias are not supported")
        }
        // transformers 5 writes rope_parameters {rope_theta, rope_type, factor, ...}; earlier
        // versions rope_theta beside rope_scaling {rope_type (or type), factor, ...}.
        let params = try c.dictionary("rope_parameters")
        let rs = try params ?? c.dictionary("rope_scaling")
        var theta = try c.optionalDouble("rope_theta") ?? 10_000
        if let t = params?["rope_theta"] {
            guard let n = t as? NSNumber, n.doubleValue.isFinite else { throw c.fail("rope_parameters.rope_theta is not a number") }
            theta = n.doubleValue
        }
        var scaling: RopeScaling?
        if let rs {
            let type = (rs["rope_type"] as? String) ?? (rs["type"] as? String) ?? "default"
            if type != "default" {
                guard let factor = (rs["factor"] as? NSNumber)?.doubleValue else { throw c.fail("rope scaling factor is missing") }
                scaling = RopeScaling(type: type, factor: factor,
                                      lowFrequencyFactor: (rs["low_freq_factor"] as? NSNumber)?.doubleValue,
                                      highFrequencyFactor: (rs["high_freq_factor"] as? NSNumber)?.doubleValue,
                                      originalContext: (rs["original_max_position_embeddings"] as? NSNumber)?.intValue)
            }
        }
        self.init(layers: try c.int("num_hidden_layers"), dim: dim, heads: heads,
                  kvHeads: try c.optionalInt("num_key_value_heads") ?? heads,
                  headDim: try c.optionalInt("head_dim"), ffDim: try c.int("intermediate_size"),
                  vocab: try c.int("vocab_size"), context: try c.optionalInt("max_position_embeddings") ?? 2048,
                  rmsEpsilon: Float(try c.optionalDouble("rms_norm_eps") ?? 1e-6),
                  ropeTheta: theta, ropeScaling: scaling,
                  tiedEmbeddings: try c.optionalBool("tie_word_embeddings") ?? false)
        do { try validate() } catch { throw c.fail("\(error)") }
    }

    /// From a GGUF file's `llama.*` metadata (the head is tied when the file has no `output.weight`).
    public init(gguf g: GGUFFile) throws {
        let p = "llama."
        let dim = try g.int(p + "embedding_length"), heads = try g.int(p + "attention.head_count")
        let headDim = try g.optionalInt(p + "attention.key_length") ?? (heads > 0 ? dim / heads : 0)
        if let rot = try g.optionalInt(p + "rope.dimension_count"), rot != headDim {
            throw g.file.fail("rope.dimension_count \(rot) differs from the head size \(headDim) (partial rotary is not supported)")
        }
        let vocab: Int
        if let v = try g.optionalInt(p + "vocab_size") { vocab = v } else {
            guard let emb = g.tensors["token_embd.weight"], emb.dims.count == 2 else { throw g.file.fail("token_embd.weight is missing") }
            vocab = emb.dims[1]
        }
        var scaling: RopeScaling?
        if let type = g.metadata[p + "rope.scaling.type"]?.string, type != "none" {
            guard type == "linear" else { throw g.file.fail("rope scaling \(type) is not supported") }
            scaling = RopeScaling(type: "linear", factor: try g.optionalDouble(p + "rope.scaling.factor") ?? 1)
        }
        var factors: [Float]?
        if let t = g.tensors["rope_freqs.weight"] {
            guard t.dims == [headDim / 2] else { throw g.file.fail("rope_freqs.weight has extents \(t.dims), expected [\(headDim / 2)]") }
            var f = [Float](repeating: 0, count: t.count)
            try f.withUnsafeMutableBufferPointer { try g.read("rope_freqs.weight", dims: [headDim / 2], into: $0.baseAddress!) }
            factors = f
        }
        self.init(layers: try g.int(p + "block_count"), dim: dim, heads: heads,
                  kvHeads: try g.optionalInt(p + "attention.head_count_kv") ?? heads, headDim: headDim,
                  ffDim: try g.int(p + "feed_forward_length"), vocab: vocab,
                  context: try g.optionalInt(p + "context_length") ?? 2048,
                  rmsEpsilon: Float(try g.optionalDouble(p + "attention.layer_norm_rms_epsilon") ?? 1e-5),
                  ropeTheta: try g.optionalDouble(p + "rope.freq_base") ?? 10_000, ropeScaling: scaling,
                  ropeFrequencyFactors: factors, tiedEmbeddings: g.tensors["output.weight"] == nil)
        do { try validate() } catch { throw g.file.fail("\(error)") }
    }
}
