import Foundation
import SisaEngine

/// A LoRA adapter's updates in Float64: for a slot over x [in],
/// Δy = s · Bᵀᵀ (A x), from a flat copy of the adapter's values.
struct ReferenceLoRA {
    let slots: [LoRAAdapter.Slot]
    let rank: Int
    let scale: Double
    var q: [Double]

    init(_ adapter: LoRAAdapter) {
        slots = adapter.slots
        rank = adapter.config.rank
        scale = Double(adapter.config.scale)
        q = adapter.parameters.values.array.map(Double.init)
    }

    /// Adds the updates of `layer`'s slots on `target` to y (y's columns from the target's column).
    func add(layer: Int, targets: Set<String>, x: [Double], to y: inout [Double]) {
        for s in slots where s.layer == layer && targets.contains(s.target.name) {
            let K = s.target.inFeatures, N = s.target.outFeatures
            let u = (0..<rank).map { r in (0..<K).reduce(0.0) { $0 + q[s.a + r * K + $1] * x[$1] } * scale }
            for j in 0..<N {
                var d = 0.0
                for r in 0..<rank { d += u[r] * q[s.bT + r * N + j] }
                y[s.target.column + j] += d
            }
        }
    }
}

/// A deliberately naive Float64 Llama forward pass (loops, no kernels),
/// written from the model's definition (transformers' modeling_llama)
/// independently of the engine: RMSNorm, rotary embeddings with pairs
/// (i, i + hs/2), grouped-query attention, SwiGLU, tied or separate head.
struct ReferenceLlama {
    let config: LlamaConfiguration
    let layout: LlamaLayout
    var p: [Double]
    var lora: ReferenceLoRA?

    init(config: LlamaConfiguration, params: [Float], lora: LoRAAdapter? = nil) {
        self.config = config
        layout = LlamaLayout(config)
        p = params.map(Double.init)
        self.lora = lora.map(ReferenceLoRA.init)
    }

    func rmsNorm(_ x: [Double], _ w: Int) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let r = 1 / (ms + Double(config.rmsEpsilon)).squareRoot()
        return x.indices.map { p[w + $0] * x[$0] * r }
    }

    /// W [N, K] (nn.Linear layout) applied to x [K].
    func project(_ x: [Double], _ w: Int, N: Int) -> [Double] {
        let K = x.count
        return (0..<N).map { n in (0..<K).reduce(0.0) { $0 + p[w + n * K + $1] * x[$1] } }
    }

    func rope(_ v: inout [Double], heads: Int, offset: Int, position: Int) {
        let hs = config.headDim, half = hs / 2
        let f = RotaryTable.frequencies(config: config)
        for h in 0..<heads {
            for i in 0..<half {
                let angle = Double(position) * Double(f[i])
                let a = v[offset + h * hs + i], b = v[offset + h * hs + i + half]
                v[offset + h * hs + i] = a * cos(angle) - b * sin(angle)
                v[offset + h * hs + i + half] = b * cos(angle) + a * sin(angle)
            }
        }
    }

    func logits(_ tokens: [Int32]) -> [[Double]] {
        let c = config, C = c.dim, T = tokens.count, hs = c.headDim, F = c.ffDim
        let group = c.heads / c.kvHeads
        var x: [[Double]] = (0..<T).map { t in (0..<C).map { p[layout.embed + Int(tokens[t]) * C + $0] } }
        for (l, blk) in layout.blocks.enumerated() {
            let qkv: [[Double]] = (0..<T).map { t in
                let h = rmsNorm(x[t], blk.attnNorm)
                var v = project(h, blk.qkv, N: c.qkvWidth)
                lora?.add(layer: l, targets: ["q", "k", "v"], x: h, to: &v)
                rope(&v, heads: c.heads, offset: 0, position: t)
                rope(&v, heads: c.kvHeads, offset: c.qWidth, position: t)
                return v
            }
            var y = [[Double]](repeating: [Double](repeating: 0, count: c.qWidth), count: T)
            for h in 0..<c.heads {
                let g = h / group
                for t in 0..<T {
                    var scores = (0...t).map { s -> Double in
                        (0..<hs).reduce(0.0) { $0 + qkv[t][h * hs + $1] * qkv[s][c.qWidth + g * hs + $1] } / Double(hs).squareRoot()
                    }
                    let mx = scores.max()!
                    scores = scores.map { exp($0 - mx) }
                    let z = scores.reduce(0, +)
                    for s in 0...t {
                        for i in 0..<hs { y[t][h * hs + i] += scores[s] / z * qkv[s][c.qWidth + c.kvWidth + g * hs + i] }
                    }
                }
            }
            for t in 0..<T {
                var o = project(y[t], blk.o, N: C)
                lora?.add(layer: l, targets: ["o"], x: y[t], to: &o)
                for i in 0..<C { x[t][i] += o[i] }
                let h = rmsNorm(x[t], blk.mlpNorm)
                var gu = project(h, blk.gateUp, N: 2 * F)
                lora?.add(layer: l, targets: ["gate", "up"], x: h, to: &gu)
                let act = (0..<F).map { gu[$0] / (1 + exp(-gu[$0])) * gu[F + $0] }
                var d = project(act, blk.down, N: C)
                lora?.add(layer: l, targets: ["down"], x: act, to: &d)
                for i in 0..<C { x[t][i] += d[i] }
            }
        }
        return x.map { project(rmsNorm($0, layout.norm), layout.head, N: c.vocab) }
    }

    /// Mean NLL over the batch's non-ignored targets.
    func loss(_ batch: Batch) -> Double {
        var total = 0.0, count = 0
        for b in 0..<batch.B {
            let lg = logits(Array(batch.tokens[(b * batch.T)..<((b + 1) * batch.T)]))
            for t in 0..<batch.T {
                let target = Int(batch.targets[b * batch.T + t])
                guard target >= 0 else { continue }
                let mx = lg[t].max()!
                total += mx + log(lg[t].reduce(0) { $0 + exp($1 - mx) }) - lg[t][target]
                count += 1
            }
        }
        return total / Double(count)
    }
}
