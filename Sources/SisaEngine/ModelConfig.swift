import Foundation

/// Shape of the byte-level GPT: vocabulary 257 = 256 byte values + end-of-text.
public struct ModelConfig: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var layers: Int
    public var heads: Int
    public var dim: Int
    public var context: Int
    public var vocab: Int

    public static let endOfText: Int32 = 256
    public static let byteVocab = 257

    public init(layers: Int, heads: Int, dim: Int, context: Int, vocab: Int = ModelConfig.byteVocab) {
        self.layers = layers
        self.heads = heads
        self.dim = dim
        self.context = context
        self.vocab = vocab
    }

    public static let nano = ModelConfig(layers: 2, heads: 2, dim: 64, context: 64)
    public static let tiny = ModelConfig(layers: 4, heads: 4, dim: 128, context: 128)
    public static let small = ModelConfig(layers: 6, heads: 8, dim: 256, context: 256)
    public static let presets: [String: ModelConfig] = ["nano": .nano, "tiny": .tiny, "small": .small]

    public var headSize: Int { dim / heads }

    /// Largest shapes the engine accepts. They keep every size computed from a
    /// configuration (parameter counts, activation buffers) far from Int
    /// overflow, so a configuration read from a file cannot trap.
    public static let maxLayers = 64, maxDim = 4096, maxContext = 8192

    public func validate() throws {
        guard layers >= 1, heads >= 1, dim >= 1, context >= 2, vocab >= 2 else {
            throw EngineError.invalidConfig("layers, heads, dim must be >= 1 and context >= 2 (got \(self))")
        }
        guard layers <= ModelConfig.maxLayers, dim <= ModelConfig.maxDim, context <= ModelConfig.maxContext,
              heads <= dim else {
            throw EngineError.invalidConfig("model too large for this engine (layers <= \(ModelConfig.maxLayers), dim <= \(ModelConfig.maxDim), context <= \(ModelConfig.maxContext), heads <= dim; got \(self))")
        }
        guard dim % heads == 0 else {
            throw EngineError.invalidConfig("dim \(dim) is not divisible by heads \(heads)")
        }
        guard vocab == ModelConfig.byteVocab else {
            throw EngineError.invalidConfig("the byte-level model needs vocab 257, got \(vocab)")
        }
    }

    /// Parameter count, embeddings included (the head is tied to wte).
    public var parameterCount: Int { ParameterLayout(self).count }

    /// Training FLOPs per token, the usual estimate: 6 x parameters for the
    /// matrix products plus 12 x layers x context x dim for attention.
    public var trainingFLOPsPerToken: Double {
        6 * Double(parameterCount) + 12 * Double(layers * context * dim)
    }

    public var description: String { "L\(layers) H\(heads) C\(dim) T\(context)" }
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case corruptState(String)
    case io(String)
    case format(String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid configuration: \(m)"
        case .corruptState(let m): return "corrupt training state: \(m)"
        case .io(let m): return m
        case .format(let m): return "format error: \(m)"
        }
    }
}
