// A LoRA update added to a frozen projection's output (s = alpha / rank).
//
//   x [M, in], A [r, in], Bᵀ [r, out], y [M, out] (a column slice of the product, row stride ldy)
//   forward:  uᵀ = s · (A xᵀ)          [r, M]   (kept for backward)
//             y  += (uᵀ)ᵀ Bᵀ           [M, out] (each chain continues from the base's output)
//   backward: dBᵀ = uᵀ dy              [r, out]
//             duᵀ = s · (Bᵀ dyᵀ)       [r, M]
//             dA  = duᵀ x              [r, in]
//             dx += (duᵀ)ᵀ A           [M, in]  (after the base's input gradient)
//
// Products with r rows are split by columns, those with M rows by rows: every
// element is still one chain over k in order, so the bits do not depend on
// the split.

enum LoRALinear {
    static let grain = 256

    /// Columns of an r-row output, in parts.
    private static func byColumns(_ n: Int, pool: WorkerPool, _ body: (Range<Int>) -> Void) {
        let parts = partCount(n, grain: grain)
        pool.run(parts: parts) { part, _ in body(partRange(part, of: parts, total: n)) }
    }

    private static func scale(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, by s: Float, pool: WorkerPool) {
        byColumns(cols, pool: pool) { c in
            for r in 0..<rows { for j in c { p[r * ld + j] *= s } }
        }
    }

    static func forward(x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int, M: Int,
                        a: UnsafePointer<Float>, bT: UnsafePointer<Float>, rank r: Int, inFeatures K: Int, outFeatures N: Int,
                        scale s: Float, u: UnsafeMutablePointer<Float>, kernels: Kernels, pool: WorkerPool) {
        // uᵀ[r, M] = A[r, K] · xᵀ
        byColumns(M, pool: pool) { c in
            kernels.gemm(transB: true, m: r, n: c.count, k: K, a: a, lda: K, b: x + c.lowerBound * ldx, ldb: ldx,
                         c: u + c.lowerBound, ldc: M)
        }
        scale(u, rows: r, cols: M, ld: M, by: s, pool: pool)
        // y[M, N] += (uᵀ)ᵀ · Bᵀ
        let parts = partCount(M, grain: Linear.rowGrain)
        pool.run(parts: parts) { part, _ in
            let rows = partRange(part, of: parts, total: M)
            kernels.gemm(transA: true, m: rows.count, n: N, k: r, a: u + rows.lowerBound, lda: M, b: bT, ldb: N,
                         c: y + rows.lowerBound * ldy, ldc: ldy, accumulate: true)
        }
    }

    /// dA and dBᵀ are overwritten (when given); dx is accumulated into (when given).
    static func backward(x: UnsafePointer<Float>, ldx: Int, dy: UnsafePointer<Float>, ldy: Int, dx: UnsafeMutablePointer<Float>?,
                         M: Int, a: UnsafePointer<Float>, bT: UnsafePointer<Float>,
                         dA: UnsafeMutablePointer<Float>?, dBT: UnsafeMutablePointer<Float>?,
                         rank r: Int, inFeatures K: Int, outFeatures N: Int, scale s: Float,
                         u: UnsafePointer<Float>, du: UnsafeMutablePointer<Float>, kernels: Kernels, pool: WorkerPool) {
        if let dBT {
            // dBᵀ[r, N] = uᵀ[r, M] · dy[M, N]
            byColumns(N, pool: pool) { c in
                kernels.gemm(m: r, n: c.count, k: M, a: u, lda: M, b: dy + c.lowerBound, ldb: ldy, c: dBT + c.lowerBound, ldc: N)
            }
        }
        // duᵀ[r, M] = s · (Bᵀ[r, N] · dyᵀ)
        byColumns(M, pool: pool) { c in
            kernels.gemm(transB: true, m: r, n: c.count, k: N, a: bT, lda: N, b: dy + c.lowerBound * ldy, ldb: ldy,
                         c: du + c.lowerBound, ldc: M)
        }
        scale(du, rows: r, cols: M, ld: M, by: s, pool: pool)
        if let dA {
            // dA[r, K] = duᵀ[r, M] · x[M, K]
            byColumns(K, pool: pool) { c in
                kernels.gemm(m: r, n: c.count, k: M, a: du, lda: M, b: x + c.lowerBound, ldb: ldx, c: dA + c.lowerBound, ldc: K)
            }
        }
        if let dx {
            // dx[M, K] += (duᵀ)ᵀ · A
            let parts = partCount(M, grain: Linear.rowGrain)
            pool.run(parts: parts) { part, _ in
                let rows = partRange(part, of: parts, total: M)
                kernels.gemm(transA: true, m: rows.count, n: K, k: r, a: du + rows.lowerBound, lda: M, b: a, ldb: K,
                             c: dx + rows.lowerBound * ldx, ldc: ldx, accumulate: true)
            }
        }
    }
}
