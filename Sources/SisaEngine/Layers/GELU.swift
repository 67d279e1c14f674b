// GELU, tanh approximation (GPT-2's "gelu_new"):
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
// computed as x * sigmoid(2u), the same function without cancellation.
//   d gelu/dx = s + x * 2 s (1 - s) * du/dx,  s = sigmoid(2u),
//   du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// The formulas live in CSisaKernels/ops.inc.

enum GELU {
    static let grain = 16_384

    /// out[N] = gelu(x[N])
    static func forward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, N: Int,
                        kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(N, grain: grain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: N)
            kernels.geluForward(out: out + r.lowerBound, x: x + r.lowerBound, n: r.count)
        }
    }

    /// dx[N] = dout[N] * gelu'(x[N])  (overwritten; may alias dout)
    static func backward(dx: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, N: Int, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(N, grain: grain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: N)
            kernels.geluBackward(dx: dx + r.lowerBound, dout: dout + r.lowerBound, x: x + r.lowerBound, n: r.count)
        }
    }
}
