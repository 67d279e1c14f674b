// Fully connected layer, Hugging Face GPT-2 layout: weight [in, out].
//
//   forward:  out[M, N] = inp[M, K] · w[K, N] + b[N]
//   backward: dinp[M, K] = dout[M, N] · w[K, N]^T
//             dw[K, N]   = inp[M, K]^T · dout[M, N]
//             db[N]      = Σ_rows dout[M, N]
//
// Parallel split: forward and dinp by rows of M, w packed once for all row
// blocks (or by columns when the batch is short; Kernels.product), dw along
// its wider side, one part per thread, with db summed while dw packs dout.
// Every output element is one chain whatever the split (see WorkerPool).

public enum Linear {
    static let rowGrain = 256
    static let colGrain = 64

    /// out[M, N] = inp[M, K] · w[K, N] (+ b[N] when given: each chain starts from the bias).
    static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                        M: Int, K: Int, N: Int, kernels: Kernels, pool: WorkerPool) {
        kernels.product(m: M, n: N, k: K, a: inp, lda: K, b: w, ldb: N, c: out, ldc: N, bias: b, rowGrain: rowGrain, pool: pool)
    }

    /// Writes dinp and dw (each if given), and db along with dw (a layer's weight and bias
    /// are trained or frozen together); gradients are overwritten, not accumulated.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                db: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                M: Int, K: Int, N: Int, kernels: Kernels, pool: WorkerPool, profiler: Profiler? = nil) {
        if let dinp {
            let run = {
                // dinp = dout · wᵀ (w [K, N] is op(B) transposed)
                kernels.product(transB: true, m: M, n: K, k: N, a: dout, lda: N, b: w, ldb: N, c: dinp, ldc: K,
                                rowGrain: rowGrain, pool: pool)
            }
            if let profiler { profiler.measure("matmul bwd dinp", run) } else { run() }
        }
        if let dw {
            let run = {
                pool.weightGradientBlocks(rows: K, columns: N, grain: colGrain) { rows, cols in
                    // dw[rows, cols] = inp[:, rows]^T · dout[:, cols], and db[cols] = Σ_rows dout[:, cols]
                    // summed while the product packs dout (rows in order: the bits of 1ᵀ · dout by
                    // fma(1, x, s)). Every row block packs all of its columns; the first sums them.
                    kernels.gemm(transA: true, m: rows.count, n: cols.count, k: M,
                                 a: inp + rows.lowerBound, lda: K, b: dout + cols.lowerBound, ldb: N,
                                 c: dw + rows.lowerBound * N + cols.lowerBound, ldc: N,
                                 bSums: rows.lowerBound == 0 ? db.map { $0 + cols.lowerBound } : nil)
                }
            }
            if let profiler { profiler.measure("matmul bwd dw", run) } else { run() }
        }
    }

    /// out[c] = Σ_r x[r * ld + c], rows summed in order.
    static func columnSums(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) {
        out.update(repeating: 0, count: cols)
        for r in 0..<rows { addInPlace(out, x + r * ld, cols) }
    }
}
