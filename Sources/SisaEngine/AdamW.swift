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
            return Float(minLR + 0.5 * (Double(learningRate) - minLR) * (1 + cos(Double.pi * progress)))
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

    public init(config: OptimizerConfig, layout: ParameterLayout) {
        self.config = config
        m = FloatBuffer(count: layout.count)
        v = FloatBuffer(count: layout.count)
        decayMask = layout.tensors.map { ($0.offset..<($0.offset + $0.count), $0.decays) }
    }

    /// Global L2 norm of `grads`, summed in fixed parts (Double) then in part order.
    public static func norm(_ grads: FloatBuffer, pool: WorkerPool) -> Double {
        let n = grads.count
        let parts = partCount(n, grain: grain)
        var partial = [Double](repeating: 0, count: parts)
        partial.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            pool.run(parts: parts) { part, _ in
                let r = partRange(part, of: parts, total: n)
                var acc = 0.0
                var i = r.lowerBound
                let g = grads.pointer
                while i + 8 <= r.upperBound {
                    let x = load8(g + i)
                    acc += Double(hsum(x * x))
                    i += 8
                }
                while i < r.upperBound { acc += Double(g[i] * g[i]); i += 1 }
                out[part] = acc
            }
        }
        return partial.reduce(0, +).squareRoot()
    }

    /// One update; returns (learning rate used, gradient norm before clipping).
    @discardableResult
    public func update(params: FloatBuffer, grads: FloatBuffer, pool: WorkerPool) -> (lr: Float, gradNorm: Double) {
        let gnorm = AdamW.norm(grads, pool: pool)
        let clip = gnorm > Double(config.clipNorm) ? Float(Double(config.clipNorm) / (gnorm + 1e-6)) : 1
        let lr = config.learningRate(at: step)
        step += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.epsilon, wd = config.weightDecay
        let c1 = 1 / (1 - Float(pow(Double(b1), Double(step))))
        let c2 = 1 / (1 - Float(pow(Double(b2), Double(step))))
        let P = params.pointer, G = grads.pointer, M = m.pointer, Vv = v.pointer
        for (range, decays) in decayMask {
            let decay = decays ? wd : 0
            let parts = partCount(range.count, grain: AdamW.grain)
            pool.run(parts: parts) { part, _ in
                let r = partRange(part, of: parts, total: range.count)
                let lo = range.lowerBound + r.lowerBound, hi = range.lowerBound + r.upperBound
                var i = lo
                let vb1 = F8(repeating: b1), vb2 = F8(repeating: b2), vclip = F8(repeating: clip)
                let vc1 = F8(repeating: c1), vc2 = F8(repeating: c2), veps = F8(repeating: eps)
                let vlr = F8(repeating: lr), vdecay = F8(repeating: decay)
                while i + 8 <= hi {
                    let g = load8(G + i) * vclip
                    let mm = vb1 * load8(M + i) + (1 - vb1) * g
                    let vv = vb2 * load8(Vv + i) + (1 - vb2) * g * g
                    store8(mm, M + i)
                    store8(vv, Vv + i)
                    let p = load8(P + i)
                    let upd = (mm * vc1) / ((vv * vc2).squareRoot() + veps) + vdecay * p
                    store8(p - vlr * upd, P + i)
                    i += 8
                }
                while i < hi {
                    let g = G[i] * clip
                    let mm = b1 * M[i] + (1 - b1) * g
                    let vv = b2 * Vv[i] + (1 - b2) * g * g
                    M[i] = mm
                    Vv[i] = vv
                    P[i] -= lr * ((mm * c1) / ((vv * c2).squareRoot() + eps) + decay * P[i])
                    i += 1
                }
            }
        }
        return (lr, gnorm)
    }
}
