// LayerNorm over the last dimension, eps 1e-5 (GPT-2).
//
//   forward:  out[M, C] = (x - mean) * rstd * w[C] + b[C]; keeps mean[M], rstd[M]
//   backward: dx[M, C] (accumulated into), dw[C], db[C] (overwritten)
//
// Each row is one kernel call's worth of work (kernels.layerNorm*); parts of
// rows run in parallel, and the per-part dw/db sums are added in part order.

enum LayerNorm {
    static let eps: Float = 1e-5
    static let rowGrain = 64

    static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                        rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, b: UnsafePointer<Float>,
                        M: Int, C: Int, eps: Float = LayerNorm.eps, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: M)
            kernels.layerNormForward(out: out + r.lowerBound * C, mean: mean + r.lowerBound, rstd: rstd + r.lowerBound,
                                     x: x + r.lowerBound * C, w: w, b: b, rows: r.count, C: C, eps: eps)
        }
    }

    /// dx += LayerNorm backward; dw, db overwritten with this call's gradients
    /// (skipped when nil: a frozen base). `partials` is scratch of 2 * C * parts
    /// floats for per-part dw/db sums.
    static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?,
                         db: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                         w: UnsafePointer<Float>, M: Int, C: Int,
                         partials: UnsafeMutablePointer<Float>, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let pdw = partials + part * 2 * C, pdb = pdw + C
            pdw.update(repeating: 0, count: 2 * C)
            let r = partRange(part, of: parts, total: M)
            kernels.layerNormBackward(dx: dx + r.lowerBound * C, dw: pdw, db: pdb, dout: dout + r.lowerBound * C,
                                      x: x + r.lowerBound * C, mean: mean + r.lowerBound, rstd: rstd + r.lowerBound,
                                      w: w, rows: r.count, C: C)
        }
        // Reduce the per-part sums in part order.
        guard let dw, let db else { return }
        dw.update(from: partials, count: C)
        db.update(from: partials + C, count: C)
        for p in 1..<max(parts, 1) {
            addInPlace(dw, partials + p * 2 * C, C)
            addInPlace(db, partials + p * 2 * C + C, C)
        }
    }
}
