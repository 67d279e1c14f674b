/// A matrix product run over a worker pool, with the operand every block
/// reads packed once.
///
/// A product with rows enough is cut into row blocks (`WorkerPool.productBlocks`),
/// and each block reads all of op(B). Left to `gemm`, every block packs op(B)
/// again: with 256-row blocks a 2,048-row batch packed each weight 8 times in
/// the forward and 8 times (transposing) in the input gradient, and that copying
/// was about 5% of a byte model's training step (perf, Zen 4: pack_b 4.9% of
/// small's step, 5.3% of tiny's). Here op(B) is packed once, its panels shared
/// out among the threads, and the blocks read it from there.
///
/// Packing only copies floats and every element stays one chain over k in
/// order, so the bits are those of `gemm` on the unpacked operands whatever
/// the cut (the every-path, every-thread-count digest tests pin them).
extension Kernels {
    /// C[m, n] = init + op(A)[m, k] · op(B)[k, n] over `pool`, as `gemm` defines it
    /// (init: the bias row when given, else 0). Short products (fewer than
    /// `rowGrain` rows per thread) are cut by columns and pack only their own.
    public func product(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
                        rowGrain: Int, pool: WorkerPool) {
        let rowParts = partCount(m, grain: rowGrain)
        guard k > 0, n > 0, rowParts > 1, pool.splitsByRows(rows: m, columns: n, rowGrain: rowGrain) else {
            pool.productBlocks(rows: m, columns: n, rowGrain: rowGrain) { rows, cols in
                let a0 = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                let b0 = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                gemm(transA: transA, transB: transB, m: rows.count, n: cols.count, k: k, a: a0, lda: lda, b: b0, ldb: ldb,
                     c: c + rows.lowerBound * ldc + cols.lowerBound, ldc: ldc, bias: bias.map { $0 + cols.lowerBound })
            }
            return
        }
        // The path and blocking the planner picks for one row block; the panels are in that path's layout.
        let products = panelProducts(for: .init(transA: transA, transB: transB, m: partRange(0, of: rowParts, total: m).count,
                                                n: n, k: k))
        let panels = products.scratch(floats: products.floats(k: k, n: n))
        products.packShared(panels, b: b, ldb: ldb, transB: transB, k: k, n: n, pool: pool)
        pool.run(parts: rowParts) { part, _ in
            let rows = partRange(part, of: rowParts, total: m)
            products.gemm(transA: transA, m: rows.count, n: n, k: k, a: transA ? a + rows.lowerBound : a + rows.lowerBound * lda,
                          lda: lda, panels: panels, packedK: k, c: c + rows.lowerBound * ldc, ldc: ldc, bias: bias)
        }
    }
}

extension PanelProducts {
    /// Packs op(B) [k, n] at `dst` (as `pack`), its panels shared out among `pool`'s threads.
    func packShared(_ dst: UnsafeMutablePointer<Float>, b: UnsafePointer<Float>, ldb: Int, transB: Bool, k: Int, n: Int,
                    pool: WorkerPool) {
        let nr = columnsPerPanel
        let panelCount = (n + nr - 1) / nr
        // A part per thread, unless the copy is too small to be worth a parallel region.
        let parts = min(panelCount, pool.productParts(panelCount * nr * k, grain: 32_768))
        pool.run(parts: parts) { part, _ in
            let p = partRange(part, of: parts, total: panelCount)
            let c0 = p.lowerBound * nr, c1 = min(n, p.upperBound * nr)
            guard c1 > c0 else { return }
            pack(dst + c0 * k, b: transB ? b + c0 * ldb : b + c0, ldb: ldb, transB: transB, k: k, n: c1 - c0)
        }
    }
}
