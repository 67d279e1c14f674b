import Foundation

/// The model families the engine runs, by the `model_type` of a Hugging
/// Face configuration (or the `general.architecture` of a GGUF file).
public enum ModelArchitecture: String, Codable, Sendable, CaseIterable {
    case gpt2, llama
}

/// A flat buffer of named tensors with an optional gradient buffer beside
/// it: a model's weights, or an adapter's. The optimizer trains one of these.
///
/// `@unchecked Sendable`: its buffers are FloatBuffers (see there); values
/// change only in an optimizer step on the training thread, never while
/// another thread reads them.
public final class ParameterSet: @unchecked Sendable {
    public let values: FloatBuffer
    /// nil when nothing is trained here (a frozen base, an inference copy).
    public let gradients: FloatBuffer?
    public let tensors: [ParameterTensor]

    public init(values: FloatBuffer, gradients: FloatBuffer?, tensors: [ParameterTensor]) {
        precondition(gradients.map { $0.count == values.count } ?? true, "gradient buffer of another size")
        self.values = values
        self.gradients = gradients
        self.tensors = tensors
    }

    public var count: Int { values.count }

    /// sha256 of the values (little-endian fp32, tensor order).
    public var digest: String { Digest.sha256Hex(values.bytes) }

    public func tensor(named name: String) -> ParameterTensor? { tensors.first { $0.name == name } }
}

/// What every model family offers the trainer, the scorer, the ensemble and
/// the decoder: a forward pass over a batch (keeping what its backward needs),
/// the backward pass, and incremental decoding with a key/value cache.
///
/// Each family lives in its own folder (Models/GPT2, Models/Llama) with its
/// configuration, tensor layout, model and decoder; `BaseModel` builds the
/// right one from a Hugging Face folder or a GGUF file.
public protocol LanguageModel: AnyObject {
    var architecture: ModelArchitecture { get }
    var vocabularySize: Int { get }
    /// Longest row the model takes (batch T and the decoder's window).
    var context: Int { get }
    var pool: WorkerPool { get }
    var kernels: Kernels { get }
    /// The model's own weights: a byte model's parameters, or a pretrained base.
    var weights: ParameterSet { get }
    /// A LoRA adapter over the frozen weights (nil: none). Its parameters get
    /// gradients; the weights get them only when `weights.gradients` exists.
    var adapter: LoRAAdapter? { get }
    /// Per-kernel timings (benchmarks only).
    var profiler: Profiler? { get set }

    /// Runs the model on `batch`. With `gradients`, the logits are replaced by
    /// dlogits for `backward()`. Returns the mean NLL over the batch's targets.
    @discardableResult
    func forward(_ batch: Batch, gradients: Bool, gradScale: Float?) -> Double

    /// Gradients of the last training forward: into the adapter's parameters
    /// (when there is one) and into the weights (when they have a gradient
    /// buffer). `weightGradients: false` propagates through the activations only.
    func backward(weightGradients: Bool, recordNorms: RecordGradientNorms?)

    /// Per-position NLL of the last forward, [B * T].
    var lastTokenLosses: [Float] { get }
    /// Logits of the last forward without gradients, [B * T * V].
    func withLastLogits<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R
    /// Multiplies the kept dlogits of each span by its factor (per-record weighting).
    func scaleLossGradients(spans: [Range<Int>], factors: [Float])

    /// A decoder with its own key/value cache over this model's weights.
    func makeDecoder() -> any TokenDecoder

    /// Blocks, and the projections LoRA may adapt in each.
    var layerCount: Int { get }
    var loraTargets: [LoRATarget] { get }
    /// Puts `adapter` (built for `loraTargets` and `layerCount`) over the weights.
    func attach(_ adapter: LoRAAdapter)
    /// Where the weight a target adapts in layer `layer` sits in `weights` (for merging an adapter in).
    func placement(layer: Int, target: LoRATarget) -> WeightPlacement

    /// A model over the same weights (shared, never written, no gradients),
    /// without an adapter, with activations of its own: for adapters over one
    /// frozen base, and for inference threads.
    func sharingWeights(pool: WorkerPool) -> any LanguageModel

    /// A model with its own copy of the weights (and gradients when
    /// `trainable`), without an adapter: full fine-tuning of a base.
    func copyingWeights(pool: WorkerPool, trainable: Bool) throws -> any LanguageModel
}

/// A projection's weight inside a flat buffer: element (output o, input i)
/// at `offset + o * outStride + i * inStride` (llama's [out, in] rows,
/// GPT-2's [in, out] Conv1D columns).
public struct WeightPlacement: Sendable, Equatable {
    public let offset: Int, outStride: Int, inStride: Int
}

extension LanguageModel {
    @discardableResult
    public func forward(_ batch: Batch) -> Double { forward(batch, gradients: false, gradScale: nil) }

    @discardableResult
    public func forward(_ batch: Batch, gradients: Bool) -> Double { forward(batch, gradients: gradients, gradScale: nil) }

    public func backward() { backward(weightGradients: true, recordNorms: nil) }

    /// sha256 of what is trained: the adapter's parameters when there is one,
    /// else the weights.
    public var digest: String { adapter?.parameters.digest ?? weights.digest }

    /// The parameters an optimizer updates for this model.
    public var trainable: ParameterSet { adapter?.parameters ?? weights }
}

/// Incremental inference for one sequence: feed a token, get the logits of
/// the next. The key/value cache holds the window so far; when it is full
/// the cache is rebuilt from the last half of the history.
public protocol TokenDecoder: AnyObject {
    var vocabularySize: Int { get }
    var history: [Int32] { get }
    func reset()
    @discardableResult
    func feed(_ token: Int32) -> UnsafeBufferPointer<Float>
}
