import CSisaKernels
import Foundation

/// A matrix packed once in the layout the product kernel reads B in: whole-K
/// panels of the micro-kernel's column count, `[ceil(n / nr)][k][nr]`,
/// zero-padded past the last column.
///
/// The kernel otherwise packs each k-block x column-block of B on every call,
/// and a row-split product packs the whole of B once per row block. For a
/// frozen weight (a base under LoRA) that is pure overhead: the transposing
/// copy of llama's `[out, in]` weights took about a tenth of the product time
/// of a SmolLM2 forward pass (perf, this VM). Packing only copies floats, so a
/// product read from panels has the same chains, and bits, as one that packs.
///
/// The panels belong to the path that packed them (its `nr`); a product over
/// them runs that path's micro-kernel, with the blocking the planner picks.
public final class PackedPanels: @unchecked Sendable {
    /// op(B)'s extents: k rows (the product's inner dimension) by n columns.
    public let k: Int, n: Int
    /// Columns per panel: the packing path's register tile width.
    public let columnsPerPanel: Int
    let table: UnsafePointer<SisaKernelTable>
    let storage: FloatBuffer

    /// Bytes held (for memory reports).
    public var bytes: Int { storage.count * MemoryLayout<Float>.stride }

    init(table: UnsafePointer<SisaKernelTable>, b: UnsafePointer<Float>, ldb: Int, transB: Bool, k: Int, n: Int) {
        self.table = table
        self.k = k
        self.n = n
        columnsPerPanel = Int(table.pointee.gemm_nr)
        storage = FloatBuffer(count: PackedPanels.floats(k: k, n: n, columnsPerPanel: columnsPerPanel))
        table.pointee.pack_panels(storage.pointer, b, ldb, transB ? 1 : 0, k, n)
    }

    /// Floats that op(B) [k, n] takes packed: whole panels of `columnsPerPanel` columns, zero-padded.
    static func floats(k: Int, n: Int, columnsPerPanel: Int) -> Int {
        (n + columnsPerPanel - 1) / columnsPerPanel * columnsPerPanel * k
    }

    /// The first float of the panel holding column `column` (a multiple of `columnsPerPanel`).
    func panel(at column: Int) -> UnsafePointer<Float> {
        UnsafePointer(storage.pointer + (column / columnsPerPanel) * k * columnsPerPanel)
    }
}

extension Kernels {
    /// op(B) [k, n] packed once for products that read it many times (B is
    /// stored [n, k] when `transB`, as nn.Linear's weights are).
    public func packPanels(b: UnsafePointer<Float>, ldb: Int, transB: Bool, k: Int, n: Int) -> PackedPanels {
        precondition(k >= 1 && n >= 1 && ldb >= (transB ? k : n), "packPanels: bad extents (k \(k), n \(n), ldb \(ldb))")
        return PackedPanels(table: productTable(transB: transB, k: k, n: n), b: b, ldb: ldb, transB: transB, k: k, n: n)
    }

    /// C[m, n] = init + op(A)[m, k] · P[k, column ..< column + n], with P
    /// packed by `packPanels`: the same chains as `gemm` over the unpacked
    /// matrix. `column` must start a panel (a multiple of `columnsPerPanel`).
    public func gemm(transA: Bool = false, m: Int, n: Int, a: UnsafePointer<Float>, lda: Int, panels: PackedPanels,
                     column: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false,
                     bias: UnsafePointer<Float>? = nil) {
        let k = panels.k
        precondition(m >= 0 && n >= 0, "gemm: negative extent (m \(m), n \(n))")
        precondition(column >= 0 && column % panels.columnsPerPanel == 0 && column + n <= panels.n,
                     "gemm: columns \(column)..<\(column + n) do not start a panel of a \(panels.n)-column matrix")
        precondition(!(accumulate && bias != nil), "gemm: a chain starts from C or from the bias, not both")
        precondition(lda >= max(1, transA ? m : k) && ldc >= max(1, n),
                     "gemm: leading dimension too small (lda \(lda), ldc \(ldc) for m \(m), n \(n), k \(k))")
        guard m > 0, n > 0 else { return }
        // The planner's blocking for the same product unpacked; every nc it
        // uses is a multiple of every path's panel width.
        let blocking = planner.map { p in
            p.plan(ProductPlanner.Shape(transA: transA, transB: true, m: m, n: n, k: k)).blocking
        } ?? ProductPlanner.Candidate.defaultBlocking
        panels.table.pointee.gemm_panels(transA ? 1 : 0, m, n, k, a, lda, panels.panel(at: column), k, c, ldc,
                                         accumulate ? 1 : 0, bias, blocking)
    }

    /// y[n] (=|+=) x[k] · P[k, column ..< column + n]: one row of the product
    /// above, the same chains (so the bits of the batch forward's row), without
    /// padding the row to a register tile. Decoding one token reads each
    /// frozen weight once, in the order it is stored.
    public func gemv(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, panels: PackedPanels, column: Int = 0, n: Int? = nil,
                     accumulate: Bool = false) {
        let n = n ?? panels.n - column
        precondition(n >= 0 && column >= 0 && column % panels.columnsPerPanel == 0 && column + n <= panels.n,
                     "gemv: columns \(column)..<\(column + n) do not start a panel of a \(panels.n)-column matrix")
        guard n > 0 else { return }
        panels.table.pointee.gemv_panels(y, x, panels.panel(at: column), panels.k, n, accumulate ? 1 : 0)
    }

    /// The table products of this shape run on: the planner's choice, or this path's.
    private func productTable(transB: Bool, k: Int, n: Int) -> UnsafePointer<SisaKernelTable> {
        panelProducts(for: ProductPlanner.Shape(transA: false, transB: transB, m: 256, n: n, k: k)).table
    }
}
