import Foundation
import SisaEngine

public enum UnlearningMethod: String, CaseIterable, Codable, Sendable {
    /// Gradient ascent on the forget records' NLL.
    case ga
    /// Ascent on the forget records plus descent on retained records of the shard.
    case graddiff
    /// Negative preference optimisation against the model before unlearning.
    case npo
    /// No change to the model: an output filter blocks verbatim continuations
    /// of the forget records (a guardrail baseline, Thaker et al. 2024).
    case filter
}

public struct UnlearningOptions: Codable, Sendable {
    public var method: UnlearningMethod = .ga
    public var learningRate: Float = 1e-4
    public var steps: Int = 60
    /// Forget (and, for graddiff, retain) sequences per step.
    public var batch: Int = 8
    /// graddiff: weight of the descent term on retained records.
    public var retainWeight: Float = 1
    /// npo: inverse temperature beta.
    public var beta: Double = 0.1
    /// filter: window length in bytes.
    public var filterBytes: Int = OutputFilter.defaultWindowBytes
    /// Seed of the order in which the forget and retained sequences are
    /// visited (nil: the order given). Runs from one original model that
    /// differ only here are the challenge's N unlearning runs.
    public var orderSeed: UInt64?

    public init() {}
}

/// Runs one approximate method on a copy of one shard's model. Never touches
/// the store: the copy lives in memory.
final class ApproximateUnlearner {
    let shard: Int
    let model: ShardModel
    let optimizer: AdamW
    let options: UnlearningOptions
    let forget: [[Int32]]
    let retain: [[Int32]]
    /// npo: summed log-likelihood of each forget sequence under the original model.
    private var referenceLogLikelihood: [Double] = []
    private(set) var flops: Double = 0

    private var net: any LanguageModel { model.model }

    init(shard: Int, original: ShardModel, forget: [[UInt8]], retain: [[UInt8]], options: UnlearningOptions) throws {
        self.shard = shard
        self.options = options
        model = try original.trainableCopy(pool: original.model.pool)
        var opt = OptimizerConfig()
        opt.learningRate = options.learningRate
        opt.warmupSteps = 0
        opt.weightDecay = 0
        optimizer = AdamW(config: opt, tensors: model.model.trainable.tensors)
        let T = original.model.context
        // Training sequences are the records' first context+1 tokens.
        var f = forget.map { Array(original.codec.sequence($0).prefix(T + 1)) }
        var r = retain.map { Array(original.codec.sequence($0).prefix(T + 1)) }
        if let seed = options.orderSeed {
            var g = Xoshiro256(seed: seed)
            deterministicShuffle(&f, using: &g)
            deterministicShuffle(&r, using: &g)
        }
        self.forget = f
        self.retain = r
        if options.method == .npo {
            referenceLogLikelihood = logLikelihoods(self.forget)
        }
    }

    /// Indices i*batch ..< (i+1)*batch into `count` sequences, cycling.
    private func windowIndices(count: Int, step: Int) -> [Int] {
        guard count > options.batch else { return Array(0..<count) }
        return (0..<options.batch).map { (step * options.batch + $0) % count }
    }

    private func window(_ seqs: [[Int32]], step: Int) -> [[Int32]] {
        windowIndices(count: seqs.count, step: step).map { seqs[$0] }
    }

    private func batch(_ rows: [[Int32]], weights rowWeights: [Float]) -> Batch {
        let T = max(1, rows.map { $0.count - 1 }.max() ?? 1)
        var b = Batch(rows: rows, T: T)
        b.weights = (0..<(rows.count * T)).map { rowWeights[$0 / T] }
        return b
    }

    /// Summed log-likelihood of each sequence (one forward, no gradients).
    private func logLikelihoods(_ rows: [[Int32]]) -> [Double] {
        let T = max(1, rows.map { $0.count - 1 }.max() ?? 1)
        net.forward(Batch(rows: rows, T: T))
        flops += Double(rows.count * T) * model.trainingFLOPsPerToken / 3
        let losses = net.lastTokenLosses
        return rows.indices.map { r in -(0..<T).reduce(0.0) { $0 + Double(losses[r * T + $1]) } }
    }

    /// One optimizer step of the method.
    func step(_ index: Int) {
        guard options.method != .filter else { return }
        let f = window(forget, step: index)
        var rows = f
        var weights: [Float]
        switch options.method {
        case .ga:
            weights = [Float](repeating: -1, count: f.count)
        case .graddiff:
            // Paired batches: as many retained sequences as forget sequences.
            let r = Array(window(retain, step: index).prefix(f.count))
            rows += r
            weights = [Float](repeating: -1, count: f.count) + [Float](repeating: options.retainWeight, count: r.count)
        case .filter:
            return
        case .npo:
            // dL/dθ = -2 σ(β (ℓθ - ℓref)) ∇NLL_sum: ascent weighted per record,
            // fading as the record becomes less likely than under the reference.
            let lθ = logLikelihoods(f)
            let idx = windowIndices(count: forget.count, step: index)
            weights = zip(lθ, idx).map { l, i in
                let d = options.beta * (l - referenceLogLikelihood[i])
                return Float(-2 / (1 + Numerics.exp(-d)))
            }
        }
        let b = batch(rows, weights: weights)
        net.forward(b, gradients: true)
        net.backward()
        let t = net.trainable
        optimizer.update(params: t.values, grads: t.gradients!, kernels: net.kernels, pool: net.pool)
        flops += Double(rows.count * b.T) * model.trainingFLOPsPerToken
    }
}
