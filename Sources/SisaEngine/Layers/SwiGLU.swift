// The SwiGLU activation of llama's MLP, over the fused gate|up product:
//
//   gu [M, 2F] = [gate | up] per row
//   forward:  a[M, F] = silu(gate) ⊙ up,   silu(g) = g / (1 + e^−g)
//   backward: d up   = da ⊙ silu(gate)
//             d gate = (da ⊙ up) ⊙ σ(g) (1 + g (1 − σ(g))),  σ(g) = 1 / (1 + e^−g)
//   (dgu [M, 2F] overwritten). The formulas live in CSisaKernels/ops.inc.

enum SwiGLU {
    static let rowGrain = 16

    static func forward(out: UnsafeMutablePointer<Float>, gu: UnsafePointer<Float>, M: Int, F: Int,
                        kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: M)
            kernels.swigluForward(out: out + r.lowerBound * F, gu: gu + r.lowerBound * 2 * F, rows: r.count, F: F)
        }
    }

    static func backward(dgu: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, gu: UnsafePointer<Float>, M: Int, F: Int,
                         kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: M)
            kernels.swigluBackward(dgu: dgu + r.lowerBound * 2 * F, dout: dout + r.lowerBound * F, gu: gu + r.lowerBound * 2 * F,
                                   rows: r.count, F: F)
        }
    }
}
