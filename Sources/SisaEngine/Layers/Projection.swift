// A projection in nn.Linear's layout (llama's weights): W [N, K] = [out, in].
//
//   forward:  out[M, N] = inp[M, K] · Wᵀ               (B-transposed product)
//   backward: dinp[M, K] = dout[M, N] · W[N, K]         (overwritten, or chained on when accumulating)
//             dW[N, K]   = doutᵀ · inp                  (overwritten)
//
// Row strides are explicit because q|k|v and gate|up are fused products
// whose outputs several consumers read in column slices.

enum Projection {
    static let rowGrain = 256
    static let colGrain = 64

    static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, w: UnsafePointer<Float>,
                        M: Int, K: Int, N: Int, kernels: Kernels, pool: WorkerPool) {
        kernels.product(transB: true, m: M, n: N, k: K, a: inp, lda: K, b: w, ldb: K, c: out, ldc: N, rowGrain: rowGrain, pool: pool)
    }

    /// out[M, N] = inp[M, K] · P (+ bias [N]) over a frozen weight packed once
    /// (`PackedPanels`, of either layout): the same bits as the forward that
    /// packs per call, here or in `Linear` and `Head`, without that packing.
    static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, panels: PackedPanels,
                        bias: UnsafePointer<Float>? = nil, M: Int, kernels: Kernels, pool: WorkerPool) {
        let K = panels.k, N = panels.n
        pool.productBlocks(rows: M, columns: N, rowGrain: rowGrain, columnAlignment: panels.columnsPerPanel) { rows, cols in
            kernels.gemm(m: rows.count, n: cols.count, a: inp + rows.lowerBound * K, lda: K, panels: panels,
                         column: cols.lowerBound, c: out + rows.lowerBound * N + cols.lowerBound, ldc: N,
                         bias: bias.map { $0 + cols.lowerBound })
        }
    }

    /// out[S, N] (=, or += when `accumulate`) inp[S, K] · P for the few rows of
    /// a decoding step (one per lock-step member): one row by the one-row
    /// product (no tile padding), several by the S-row product, split by
    /// columns over `pool`. Each row's chains are the batch forward's.
    static func forwardRows(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, panels: PackedPanels, rows S: Int,
                            accumulate: Bool = false, kernels: Kernels, pool: WorkerPool) {
        let K = panels.k, N = panels.n
        pool.productBlocks(rows: S, columns: N, rowGrain: rowGrain, columnAlignment: panels.columnsPerPanel) { rows, cols in
            if S == 1 {
                kernels.gemv(y: out + cols.lowerBound, x: inp, panels: panels, column: cols.lowerBound, n: cols.count,
                             accumulate: accumulate)
            } else {
                kernels.gemm(m: rows.count, n: cols.count, a: inp + rows.lowerBound * K, lda: K, panels: panels,
                             column: cols.lowerBound, c: out + rows.lowerBound * N + cols.lowerBound, ldc: N, accumulate: accumulate)
            }
        }
    }

    /// dinp (when given) and dW (when given) from dout.
    static func backward(dinp: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, w: UnsafePointer<Float>, M: Int, K: Int, N: Int,
                         kernels: Kernels, pool: WorkerPool) {
        if let dinp {
            kernels.product(m: M, n: K, k: N, a: dout, lda: N, b: w, ldb: K, c: dinp, ldc: K, rowGrain: rowGrain, pool: pool)
        }
        if let dw {
            pool.weightGradientBlocks(rows: N, columns: K, grain: colGrain) { rows, cols in
                // dW[rows, cols] = dout[:, rows]ᵀ · inp[:, cols]
                kernels.gemm(transA: true, m: rows.count, n: cols.count, k: M, a: dout + rows.lowerBound, lda: N,
                             b: inp + cols.lowerBound, ldb: K, c: dw + rows.lowerBound * K + cols.lowerBound, ldc: K)
            }
        }
    }
}
