// Fully connected layer, Hugging Face GPT-2 layout: weight [in, out].
//
//   forward:  out[M, N] = inp[M, K] · w[K, N] + b[N]
//   backward: dinp[M, K] = dout[M, N] · w[K, N]^T
//             dw[K, N]   = inp[M, K]^T · dout[M, N]
//             db[N]      = Σ_rows dout[M, N]
//
// Parallel split: forward and dinp by rows of M (or by columns when the
// batch is short), dw along its wider side and db by columns of N, one part
// per thread. Every output element is one chain whatever the split (see
// WorkerPool).

enum Linear {
    static let rowGrain = 256
    static let colGrain = 64

    /// out[M, N] = inp[M, K] · w[K, N] (+ b[N] when given: each chain starts from the bias).
    static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                        M: Int, K: Int, N: Int, kernels: Kernels, pool: WorkerPool) {
        pool.productBlocks(rows: M, columns: N, rowGrain: rowGrain) { rows, cols in
            kernels.gemm(m: rows.count, n: cols.count, k: K, a: inp + rows.lowerBound * K, lda: K,
                         b: w + cols.lowerBound, ldb: N, c: out + rows.lowerBound * N + cols.lowerBound, ldc: N,
                         bias: b.map { $0 + cols.lowerBound })
        }
    }

    /// Writes dinp, dw and db (each if given); gradients are overwritten, not accumulated.
    static func backward(dinp: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                         db: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, w: UnsafePointer<Float>,
                         M: Int, K: Int, N: Int, kernels: Kernels, pool: WorkerPool, profiler: Profiler? = nil) {
        if let dinp {
            let run = {
                pool.productBlocks(rows: M, columns: K, rowGrain: rowGrain) { rows, cols in
                    // dinp = dout · wᵀ (w [K, N]: its rows `cols` are the output's columns)
                    kernels.gemm(transB: true, m: rows.count, n: cols.count, k: N,
                                 a: dout + rows.lowerBound * N, lda: N, b: w + cols.lowerBound * N, ldb: N,
                                 c: dinp + rows.lowerBound * K + cols.lowerBound, ldc: K)
                }
            }
            if let profiler { profiler.measure("matmul bwd dinp", run) } else { run() }
        }
        if let dw {
            let run = {
                pool.weightGradientBlocks(rows: K, columns: N, grain: colGrain) { rows, cols in
                    // dw[rows, cols] = inp[:, rows]^T · dout[:, cols]
                    kernels.gemm(transA: true, m: rows.count, n: cols.count, k: M,
                                 a: inp + rows.lowerBound, lda: K, b: dout + cols.lowerBound, ldb: N,
                                 c: dw + rows.lowerBound * N + cols.lowerBound, ldc: N)
                }
            }
            if let profiler { profiler.measure("matmul bwd dw", run) } else { run() }
            if let db {
                let colParts = pool.productParts(N, grain: colGrain)
                let run = {
                    // db = Σ_rows dout, rows added in order: the bits of 1ᵀ · dout by fma(1, x, s).
                    pool.run(parts: colParts) { part, _ in
                        let cols = partRange(part, of: colParts, total: N)
                        kernels.columnSums(y: db + cols.lowerBound, x: dout + cols.lowerBound, rows: M, cols: cols.count, ld: N)
                    }
                }
                if let profiler { profiler.measure("bias bwd", run) } else { run() }
            }
        }
    }

    /// out[c] = Σ_r x[r * ld + c], rows summed in order.
    static func columnSums(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) {
        out.update(repeating: 0, count: cols)
        for r in 0..<rows { addInPlace(out, x + r * ld, cols) }
    }
}
