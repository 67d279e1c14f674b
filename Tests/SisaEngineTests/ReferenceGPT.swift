import Foundation
import SisaEngine

/// A deliberately naive Float64 GPT-2 forward pass (loops, no BLAS, no SIMD),
/// written from the model's definition independently of the engine's kernels.
/// Used as ground truth: its loss is compared with the engine's, and its
/// finite differences with the engine's analytical gradients.
struct ReferenceGPT {
    let config: GPT2Configuration
    let layout: GPT2Layout
    var p: [Double]
    var lora: ReferenceLoRA?

    init(config: GPT2Configuration, params: [Float], lora: LoRAAdapter? = nil) {
        self.config = config
        layout = GPT2Layout(config)
        p = params.map(Double.init)
        self.lora = lora.map(ReferenceLoRA.init)
    }

    func layerNorm(_ x: [Double], _ w: Int, _ b: Int) -> [Double] {
        let C = x.count
        let mean = x.reduce(0, +) / Double(C)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(C)
        let rstd = 1 / (variance + 1e-5).squareRoot()
        return (0..<C).map { (x[$0] - mean) * rstd * p[w + $0] + p[b + $0] }
    }

    /// x[K] · W[K, N] + b[N], weight stored [in, out].
    func linear(_ x: [Double], _ w: Int, _ b: Int, K: Int, N: Int) -> [Double] {
        var out = (0..<N).map { p[b + $0] }
        for k in 0..<K where x[k] != 0 {
            for n in 0..<N { out[n] += x[k] * p[w + k * N + n] }
        }
        return out
    }

    func gelu(_ x: Double) -> Double {
        0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    }

    /// Logits for one sequence, [T][V].
    func logits(_ tokens: [Int32]) -> [[Double]] {
        let C = config.dim, H = config.heads, hs = C / H, T = tokens.count, V = config.vocab
        var x: [[Double]] = (0..<T).map { t in
            (0..<C).map { c in p[layout.wte + Int(tokens[t]) * C + c] + p[layout.wpe + t * C + c] }
        }
        for (l, blk) in layout.blocks.enumerated() {
            let qkv = x.map { row -> [Double] in
                let h = layerNorm(row, blk.ln1w, blk.ln1b)
                var v = linear(h, blk.qkvw, blk.qkvb, K: C, N: 3 * C)
                lora?.add(layer: l, targets: ["attn"], x: h, to: &v)
                return v
            }
            var y = [[Double]](repeating: [Double](repeating: 0, count: C), count: T)
            for h in 0..<H {
                for t in 0..<T {
                    var scores = (0...t).map { s -> Double in
                        var d = 0.0
                        for i in 0..<hs { d += qkv[t][h * hs + i] * qkv[s][C + h * hs + i] }
                        return d / Double(hs).squareRoot()
                    }
                    let mx = scores.max()!
                    scores = scores.map { exp($0 - mx) }
                    let z = scores.reduce(0, +)
                    for s in 0...t {
                        for i in 0..<hs { y[t][h * hs + i] += scores[s] / z * qkv[s][2 * C + h * hs + i] }
                    }
                }
            }
            for t in 0..<T {
                var a = linear(y[t], blk.projw, blk.projb, K: C, N: C)
                lora?.add(layer: l, targets: ["proj"], x: y[t], to: &a)
                for c in 0..<C { x[t][c] += a[c] }
                let h2 = layerNorm(x[t], blk.ln2w, blk.ln2b)
                var pre = linear(h2, blk.fcw, blk.fcb, K: C, N: 4 * C)
                lora?.add(layer: l, targets: ["fc"], x: h2, to: &pre)
                let hdn = pre.map(gelu)
                var m = linear(hdn, blk.fc2w, blk.fc2b, K: 4 * C, N: C)
                lora?.add(layer: l, targets: ["mlp_proj"], x: hdn, to: &m)
                for c in 0..<C { x[t][c] += m[c] }
            }
        }
        return x.map { row in
            let h = layerNorm(row, layout.lnfw, layout.lnfb)
            return (0..<V).map { v in (0..<C).reduce(0.0) { $0 + h[$1] * p[layout.wte + v * C + $1] } }
        }
    }

    /// Mean NLL over the batch's non-ignored targets.
    func loss(_ batch: Batch) -> Double {
        var total = 0.0, count = 0
        for b in 0..<batch.B {
            let toks = Array(batch.tokens[(b * batch.T)..<((b + 1) * batch.T)])
            let lg = logits(toks)
            for t in 0..<batch.T {
                let target = Int(batch.targets[b * batch.T + t])
                guard target >= 0 else { continue }
                let mx = lg[t].max()!
                let lse = mx + log(lg[t].reduce(0) { $0 + exp($1 - mx) })
                total += lse - lg[t][target]
                count += 1
            }
        }
        return total / Double(count)
    }
}
