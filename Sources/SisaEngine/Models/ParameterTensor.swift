import Foundation

/// One named tensor inside the flat parameter buffer.
public struct ParameterTensor: Equatable, Sendable {
    public let name: String       // Hugging Face name, e.g. "h.0.attn.c_attn.weight"
    public let shape: [Int]
    public let offset: Int        // in floats, into the flat buffer
    public var count: Int { shape.reduce(1, *) }
    /// AdamW decays matrices and embeddings, not biases or LayerNorm gains.
    public var decays: Bool { shape.count == 2 }
}
