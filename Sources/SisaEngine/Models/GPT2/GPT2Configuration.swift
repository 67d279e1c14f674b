import Foundation

/// Shape of a GPT-2-family model: the byte-level models this project trains
/// from scratch (vocabulary 257 = 256 byte values + end-of-text), and
/// pretrained GPT-2 bases of any vocabulary.
///
/// The coded fields are exactly those of the byte-level stores' configuration
/// (layers, heads, dim, context, vocab), so their checkpoint keys are unchanged;
/// `layerNormEpsilon` appears in the JSON only when it differs from GPT-2's 1e-5.
public struct GPT2Configuration: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var layers: Int
    public var heads: Int
    public var dim: Int
    /// Positions of the position table (n_positions).
    public var context: Int
    public var vocab: Int
    public var layerNormEpsilon: Float?

    public init(layers: Int, heads: Int, dim: Int, context: Int, vocab: Int = ByteTokenizer.vocabularySize,
                layerNormEpsilon: Float? = nil) {
        self.layers = layers
        self.heads = heads
        self.dim = dim
        self.context = context
        self.vocab = vocab
        self.layerNormEpsilon = layerNormEpsilon
    }

    public static let nano = GPT2Configuration(layers: 2, heads: 2, dim: 64, context: 64)
    public static let tiny = GPT2Configuration(layers: 4, heads: 4, dim: 128, context: 128)
    public static let small = GPT2Configuration(layers: 6, heads: 8, dim: 256, context: 256)
    public static let presets: [String: GPT2Configuration] = ["nano": .nano, "tiny": .tiny, "small": .small]

    public var headSize: Int { dim / heads }
    public var epsilon: Float { layerNormEpsilon ?? 1e-5 }

    /// Largest shapes the engine accepts. They keep every size computed from a
    /// configuration (parameter counts, activation buffers) far from Int
    /// overflow, so a configuration read from a file cannot trap.
    public static let maxLayers = 64, maxDim = 4096, maxContext = 8192, maxVocab = 1 << 20

    public func validate() throws {
        guard layers >= 1, heads >= 1, dim >= 1, context >= 2, vocab >= 2 else {
            throw EngineError.invalidConfig("layers, heads, dim must be >= 1, context and vocab >= 2 (got \(self))")
        }
        guard layers <= GPT2Configuration.maxLayers, dim <= GPT2Configuration.maxDim, context <= GPT2Configuration.maxContext,
              vocab <= GPT2Configuration.maxVocab, heads <= dim else {
            throw EngineError.invalidConfig("model too large for this engine (layers <= \(GPT2Configuration.maxLayers), dim <= \(GPT2Configuration.maxDim), context <= \(GPT2Configuration.maxContext), vocab <= \(GPT2Configuration.maxVocab), heads <= dim; got \(self))")
        }
        guard dim % heads == 0 else {
            throw EngineError.invalidConfig("dim \(dim) is not divisible by heads \(heads)")
        }
        if let e = layerNormEpsilon, !(e > 0 && e.isFinite) {
            throw EngineError.invalidConfig("layer_norm_epsilon must be positive (got \(e))")
        }
    }

    /// Parameter count, embeddings included (the head is tied to wte).
    public var parameterCount: Int { GPT2Layout(self).count }

    /// Training FLOPs per token, the usual estimate: 6 x parameters for the
    /// matrix products plus 12 x layers x context x dim for attention.
    public var trainingFLOPsPerToken: Double {
        6 * Double(parameterCount) + 12 * Double(layers * context * dim)
    }

    public var description: String {
        "L\(layers) H\(heads) C\(dim) T\(context)" + (vocab == ByteTokenizer.vocabularySize ? "" : " V\(vocab)")
    }
}
