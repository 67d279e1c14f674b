import CSisaKernels
import Foundation

/// Learning-rate schedule and AdamW hyper-parameters.
public struct OptimizerConfig: Codable, Equatable, Hashable, Sendable {
    public enum Schedule: String, Codable, Sendable, CaseIterable {
        /// Linear warm-up, then constant. The SISA coordinator uses this one: a
        /// stage's steps must not depend on how many stages come after it.
        case constant
        /// Linear warm-up, then cosine decay to `minLRFraction` at `totalSteps`.
        case cosine
    }

    public var learningRate: Float = 1e-3
    public var warmupSteps: Int = 20
    public var schedule: Schedule = .constant
    public var totalSteps: Int = 0
    public var minLRFraction: Float = 0.1
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.1
    public var clipNorm: Float = 1.0

    public init() {}

    /// Rejects values that would make the schedule's integer arithmetic trap
    /// (a configuration may come from a file).
    public func validate() throws {
        guard warmupSteps >= 0, totalSteps >= 0 else {
            throw EngineError.invalidConfig("warm-up and total steps must be >= 0 (got \(warmupSteps), \(totalSteps))")
        }
    }

    /// Learning rate for 0-based optimizer step `step`.
    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return learningRate * Float(step + 1) / Float(warmupSteps) }
        switch schedule {
        case .constant:
            return learningRate
        case .cosine:
            let span = max(1, totalSteps - warmupSteps)
            let progress = min(1, Double(step - warmupSteps) / Double(span))
            let minLR = Double(learningRate * minLRFraction)
            return Float(minLR + 0.5 * (Double(learningRate) - minLR) * (1 + Numerics.cos(Double.pi * progress)))
        }
    }
}

/// AdamW with global-norm gradient clipping over the flat parameter buffer.
public final class AdamW {
    public let config: OptimizerConfig
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Optimizer steps taken so far.
    public internal(set) var step: Int = 0
    private let decayMask: [(range: Range<Int>, decays: Bool)]
    static let grain = 16_384

    /// Moments for the parameter set laid out by `tensors` (contiguous, in order).
    public init(config: OptimizerConfig, tensors: [ParameterTensor]) {
        self.config = config
        let count = tensors.last.map { $0.offset + $0.count } ?? 0
        m = FloatBuffer(count: count, largePages: true)
        v = FloatBuffer(count: count, largePages: true)
        decayMask = tensors.map { ($0.offset..<($0.offset + $0.count), $0.decays) }
    }

    /// Global L2 norm of `grads`: per-part sums of squares (kernel lanes and
    /// fold), added in part order in Double.
    public static func norm(_ grads: FloatBuffer, kernels: Kernels, pool: WorkerPool) -> Double {
        let n = grads.count
        let parts = partCount(n, grain: grain)
        var partial = [Double](repeating: 0, count: parts)
        partial.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            pool.run(parts: parts) { part, _ in
                let r = partRange(part, of: parts, total: n)
                out[part] = kernels.sumOfSquares(grads.pointer + r.lowerBound, r.count)
            }
        }
        return partial.reduce(0, +).squareRoot()
    }

    /// One update; returns (learning rate used, gradient norm before clipping).
    @discardableResult
    public func update(params: FloatBuffer, grads: FloatBuffer, kernels: Kernels,
                       pool: WorkerPool) -> (lr: Float, gradNorm: Double) {
        let gnorm = AdamW.norm(grads, kernels: kernels, pool: pool)
        let clip = gnorm > Double(config.clipNorm) ? Float(Double(config.clipNorm) / (gnorm + 1e-6)) : 1
        let lr = config.learningRate(at: step)
        step += 1
        let args = SisaAdamWArgs(
            learning_rate: lr, beta1: config.beta1, beta2: config.beta2, epsilon: config.epsilon,
            weight_decay: config.weightDecay, grad_scale: clip,
            bias_correction1: 1 / (1 - Float(Numerics.pow(Double(config.beta1), step))),
            bias_correction2: 1 / (1 - Float(Numerics.pow(Double(config.beta2), step))))
        let P = params.pointer, G = grads.pointer, M = m.pointer, Vv = v.pointer
        for (range, decays) in decayMask {
            let parts = partCount(range.count, grain: AdamW.grain)
            pool.run(parts: parts) { part, _ in
                let r = partRange(part, of: parts, total: range.count)
                let lo = range.lowerBound + r.lowerBound
                kernels.adamW(p: P + lo, g: G + lo, m: M + lo, v: Vv + lo, n: r.count, args: args, decays: decays)
            }
        }
        return (lr, gnorm)
    }
}
