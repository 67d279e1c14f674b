// RMSNorm over the last dimension (llama):
//
//   forward:  r = 1 / sqrt(mean(x²) + eps)     [M]   (kept for backward)
//             out[M, C] = w[C] ⊙ (x · r)
//   backward: dx[M, C] += r · g − x · (r³ · <g, x> / C),  g = w ⊙ dout   (accumulated into)
//             dw[C]     = Σ_rows dout ⊙ (x · r)                           (overwritten, when given)
//
// The mean and the dot product reduce in the fixed 16-lane tree (kernels);
// parts of rows run in parallel and their dw sums are added in part order.

enum RMSNorm {
    static let rowGrain = 64

    static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, M: Int, C: Int, eps: Float, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: M)
            kernels.rmsNormForward(out: out + r.lowerBound * C, rstd: rstd + r.lowerBound, x: x + r.lowerBound * C, w: w,
                                   rows: r.count, C: C, eps: eps)
        }
    }

    /// Floats of `partials` scratch that `backward` needs for M rows of C.
    static func partialFloats(M: Int, C: Int) -> Int { C * partCount(M, grain: rowGrain) }

    static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, rstd: UnsafePointer<Float>, w: UnsafePointer<Float>, M: Int, C: Int,
                         partials: UnsafeMutablePointer<Float>, kernels: Kernels, pool: WorkerPool) {
        let parts = partCount(M, grain: rowGrain)
        pool.run(parts: parts) { part, _ in
            let r = partRange(part, of: parts, total: M)
            let pdw = dw == nil ? nil : partials + part * C
            pdw?.update(repeating: 0, count: C)
            kernels.rmsNormBackward(dx: dx + r.lowerBound * C, dw: pdw, dout: dout + r.lowerBound * C, x: x + r.lowerBound * C,
                                    rstd: rstd + r.lowerBound, w: w, rows: r.count, C: C)
        }
        guard let dw else { return }
        dw.update(from: partials, count: C)
        for p in 1..<max(parts, 1) { addInPlace(dw, partials + p * C, C) }
    }
}
