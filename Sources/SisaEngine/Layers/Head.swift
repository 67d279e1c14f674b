// Output head tied to the token embedding.
//   forward:  logits[M, V] = x[M, C] · wte[V, C]^T
//   backward: dx[M, C] = dlogits[M, V] · wte[V, C]      (overwritten)
//             dwte[V, C] = dlogits[M, V]^T · x[M, C]     (overwritten; the
//             embedding's backward adds its share afterwards)

enum Head {
    static let rowGrain = 256
    static let vocabGrain = 64

    static func forward(logits: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        wte: UnsafePointer<Float>, M: Int, C: Int, V: Int, kernels: Kernels, pool: WorkerPool) {
        kernels.product(transB: true, m: M, n: V, k: C, a: x, lda: C, b: wte, ldb: C, c: logits, ldc: V, rowGrain: rowGrain, pool: pool)
    }

    /// dwte nil: only dx (the activations-only pass of DP-SGD).
    static func backward(dx: UnsafeMutablePointer<Float>, dwte: UnsafeMutablePointer<Float>?,
                         dlogits: UnsafePointer<Float>, x: UnsafePointer<Float>, wte: UnsafePointer<Float>,
                         M: Int, C: Int, V: Int, kernels: Kernels, pool: WorkerPool) {
        let rowParts = partCount(M, grain: rowGrain)
        let vocabParts = dwte == nil ? 0 : pool.productParts(V, grain: vocabGrain)
        pool.run(parts: rowParts + vocabParts) { part, _ in
            if part < rowParts {
                let rows = partRange(part, of: rowParts, total: M)
                kernels.gemm(m: rows.count, n: C, k: V, a: dlogits + rows.lowerBound * V, lda: V,
                             b: wte, ldb: C, c: dx + rows.lowerBound * C, ldc: C)
            } else if let dwte {
                let vs = partRange(part - rowParts, of: vocabParts, total: V)
                kernels.gemm(transA: true, m: vs.count, n: C, k: M, a: dlogits + vs.lowerBound, lda: V,
                             b: x, ldb: C, c: dwte + vs.lowerBound * C, ldc: C)
            }
        }
    }
}
