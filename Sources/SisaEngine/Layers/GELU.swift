// GELU, tanh approximation (GPT-2's "gelu_new"):
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
// computed as x * sigmoid(2u), the same function without cancellation.
//   d gelu/dx = s + x * 2 s (1 - s) * du/dx,  s = sigmoid(2u),
//   du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)

enum GELU {
    static let grain = 16_384
    static let k0: Float = 0.797_884_560_802_865_4  // sqrt(2/pi)
    static let k1: Float = 0.044_715

    /// out[N] = gelu(x[N])
    static func forward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, N: Int, pool: WorkerPool) {
        let parts = partCount(N, grain: grain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: N)
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let v = load8(x + i)
                let u2 = (2 * k0) * (v + k1 * v * v * v)
                store8(v / (1 + exp8(-u2)), out + i)
                i += 8
            }
            while i < r.upperBound {
                let v = x[i]
                out[i] = v / (1 + exp1(-(2 * k0) * (v + k1 * v * v * v)))
                i += 1
            }
        }
    }

    /// dx[N] = dout[N] * gelu'(x[N])  (overwritten; may alias dout)
    static func backward(dx: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, N: Int, pool: WorkerPool) {
        let parts = partCount(N, grain: grain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: N)
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let v = load8(x + i)
                let v2 = v * v
                let s = 1 / (1 + exp8(-(2 * k0) * (v + k1 * v2 * v)))
                let du = k0 * (1 + (3 * k1) * v2)
                let d = s + v * 2 * s * (1 - s) * du
                store8(load8(dout + i) * d, dx + i)
                i += 8
            }
            while i < r.upperBound {
                let v = x[i]
                let v2 = v * v
                let s = 1 / (1 + exp1(-(2 * k0) * (v + k1 * v2 * v)))
                let du = k0 * (1 + 3 * k1 * v2)
                dx[i] = dout[i] * (s + v * 2 * s * (1 - s) * du)
                i += 1
            }
        }
    }
}
