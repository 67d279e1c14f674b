import CSisaKernels

/// Products that read operands packed once into per-thread scratch: attention
/// packs a head's keys and values once and multiplies row block after row
/// block against them, where a plain `gemm` would pack its B on every call
/// (with T = 256 and 32-row blocks, keys were transposed 4.5 times per head;
/// packing once took small's attention backward from 29.5-30.0 to 26.9-28.9
/// ms a step on Zen 4, the forward within the noise).
///
/// One path and blocking serve every product of a run, so the panels a run
/// packs are in the layout its products read. Packing only copies floats and
/// every product keeps its chains over k in order: the bits are those of
/// `Kernels.gemm` on the unpacked operands (the digest tests pin them).
///
/// `@unchecked Sendable`: `table` points to one of the C library's static,
/// never-written kernel tables.
public struct PanelProducts: @unchecked Sendable {
    let table: UnsafePointer<SisaKernelTable>
    let blocking: SisaBlocking

    /// Columns per panel.
    public var columnsPerPanel: Int { Int(table.pointee.gemm_nr) }

    /// Floats that op(B) [k, n] takes packed: whole panels of `columnsPerPanel` columns.
    public func floats(k: Int, n: Int) -> Int { PackedPanels.floats(k: k, n: n, columnsPerPanel: columnsPerPanel) }

    /// The calling thread's scratch for panels of `floats` floats in all (valid until its next call).
    public func scratch(floats: Int) -> UnsafeMutablePointer<Float> {
        precondition(floats >= 0)
        return sisa_panel_scratch(max(1, floats))
    }

    /// Packs op(B) [k, n] (B stored [n, k] when `transB`) at `dst`, which holds `floats(k:n:)` floats.
    public func pack(_ dst: UnsafeMutablePointer<Float>, b: UnsafePointer<Float>, ldb: Int, transB: Bool, k: Int, n: Int) {
        precondition(k >= 1 && n >= 1 && ldb >= (transB ? k : n), "pack: bad extents (k \(k), n \(n), ldb \(ldb))")
        table.pointee.pack_panels(dst, b, ldb, transB ? 1 : 0, k, n)
    }

    /// C[m, n] = init + op(A)[m, k] · P[row ..< row + k, 0 ..< n], P packed by `pack` with
    /// `packedK` rows: the chains of `Kernels.gemm` over the unpacked matrix's rows `row ..< row + k`
    /// (from the bias row [n] when given).
    public func gemm(transA: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     panels: UnsafePointer<Float>, packedK: Int, row: Int = 0,
                     c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false, bias: UnsafePointer<Float>? = nil) {
        precondition(m >= 0 && n >= 0 && k >= 0 && row >= 0 && row + k <= packedK, "gemm: rows \(row)..<\(row + k) of a \(packedK)-row panel")
        precondition(lda >= max(1, transA ? m : k) && ldc >= max(1, n),
                     "gemm: leading dimension too small (lda \(lda), ldc \(ldc) for m \(m), n \(n), k \(k))")
        precondition(!(accumulate && bias != nil), "gemm: a chain starts from C or from the bias, not both")
        table.pointee.gemm_panels(transA ? 1 : 0, m, n, k, a, lda, panels + row * columnsPerPanel, packedK, c, ldc,
                                  accumulate ? 1 : 0, bias, blocking)
    }
}

extension Kernels {
    /// The path and blocking for a run of products over shared panels: the planner's choice
    /// for `shape` (any path gives the same bits), or this path's kernels and default blocking.
    public func panelProducts(for shape: ProductPlanner.Shape) -> PanelProducts {
        guard let planner else { return PanelProducts(table: table, blocking: ProductPlanner.Candidate.defaultBlocking) }
        let c = planner.plan(shape)
        return PanelProducts(table: c.table, blocking: c.blocking)
    }
}
