import CSisaKernels
import Foundation

/// An instruction-set path of the kernels. Every path gives the same bits
/// (see Numerics.swift); they differ only in speed and in which CPUs run them.
public enum KernelPath: String, CaseIterable, Sendable, CustomStringConvertible {
    case avx512, avx2, portable

    var cPath: SisaKernelPath {
        switch self {
        case .avx512: return SISA_PATH_AVX512
        case .avx2: return SISA_PATH_AVX2
        case .portable: return SISA_PATH_PORTABLE
        }
    }

    public var description: String { rawValue }
}

/// The kernels of one path: checked Swift entry points over CSisaKernels.
///
/// Extents are checked here, once per call; the C loops behind them run
/// unchecked. Every entry point is single-threaded: the layers split work
/// into parts fixed by the shapes and run them on a `WorkerPool`.
///
/// `@unchecked Sendable`: `table` points to one of the C library's static,
/// never-written kernel tables; every other field is immutable.
public struct Kernels: @unchecked Sendable, CustomStringConvertible {
    /// The path of every kernel but the matrix products when they are tuned.
    public let path: KernelPath
    let table: UnsafePointer<SisaKernelTable>
    /// Per-shape choice of path and blocking for the matrix products (auto
    /// mode); nil when a path is forced, which then runs every product.
    public let planner: ProductPlanner?

    /// The kernels of `path` alone, or nil when this CPU cannot run it.
    public init?(_ path: KernelPath) {
        guard let t = sisa_kernel_table(path.cPath) else { return nil }
        self.path = path
        self.table = t
        planner = nil
    }

    private init(path: KernelPath, planner: ProductPlanner) {
        self.path = path
        table = sisa_kernel_table(path.cPath)!
        self.planner = planner
    }

    public var description: String { planner == nil ? path.rawValue : "\(path.rawValue) (products planned per shape)" }

    /// Paths this CPU can run, fastest first.
    public static var availablePaths: [KernelPath] { KernelPath.allCases.filter { Kernels($0) != nil } }

    /// The fastest path this CPU can run, its products planned per shape over every SIMD path.
    public static var best: Kernels { plannedDefault }
    private static let plannedDefault = Kernels(path: availablePaths[0], planner: ProductPlanner(paths: availablePaths))

    /// The environment variable that forces a path.
    public static let environmentKey = "SISA_KERNELS"

    /// The path chosen by `SISA_KERNELS` (auto, avx512, avx2 or portable;
    /// unset or empty means auto: the fastest this CPU runs).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> Kernels {
        let raw = (env[environmentKey] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        if raw.isEmpty || raw == "auto" { return best }
        guard let path = KernelPath(rawValue: raw) else {
            throw EngineError.invalidConfig("\(environmentKey)=\(raw) is not a kernel path (use auto, avx512, avx2 or portable)")
        }
        guard let k = Kernels(path) else {
            throw EngineError.invalidConfig("\(environmentKey)=\(raw): this CPU cannot run the \(raw) kernels (available: \(availablePaths.map(\.rawValue).joined(separator: ", ")))")
        }
        return k
    }

    /// The process-wide default (from the environment, read once).
    public static func processDefault() throws -> Kernels { try cachedDefault.get() }
    private static let cachedDefault = Result { try fromEnvironment() }

    /// Register tile of the matrix micro-kernel (rows x columns), for reports.
    public var tile: (rows: Int, columns: Int) { (Int(table.pointee.gemm_mr), Int(table.pointee.gemm_nr)) }

    // MARK: matrix products

    /// C[m, n] = init + op(A)[m, k] · op(B)[k, n], row-major. transA: A is
    /// stored [k, m]; transB: B is stored [n, k]. Each element of C is one
    /// fused multiply-add chain over k in order, starting from `bias[j]`
    /// when a bias [n] is given, from C itself when `accumulate`, else from 0.
    public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false,
                     bias: UnsafePointer<Float>? = nil) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative extent (m \(m), n \(n), k \(k))")
        precondition(!(accumulate && bias != nil), "gemm: a chain starts from C or from the bias, not both")
        precondition(lda >= max(1, transA ? m : k) && ldb >= max(1, transB ? k : n) && ldc >= max(1, n),
                     "gemm: leading dimension too small (lda \(lda), ldb \(ldb), ldc \(ldc) for m \(m), n \(n), k \(k))")
        guard let planner else {
            sisa_gemm(table, transA ? 1 : 0, transB ? 1 : 0, m, n, k, a, lda, b, ldb, c, ldc, accumulate ? 1 : 0, bias)
            return
        }
        let cand = planner.plan(ProductPlanner.Shape(transA: transA, transB: transB, m: m, n: n, k: k))
        cand.table.pointee.gemm_blocked(transA ? 1 : 0, transB ? 1 : 0, m, n, k, a, lda, b, ldb, c, ldc, accumulate ? 1 : 0,
                                        bias, cand.blocking)
    }

    /// C[m, n] = op(A)[m, k] · B[k, n] (chains from 0) and, when `bSums` is given,
    /// bSums[n] = Σ_rows B[k, n], rows added in order from +0: the bits of `columnSums`,
    /// taken while the product packs B. A weight gradient and its bias gradient then read
    /// the output gradient once. Without `bSums`, `gemm`.
    public func gemm(transA: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                     bSums: UnsafeMutablePointer<Float>?) {
        // With no rows there is nothing to pack for: the sums alone.
        guard let bSums, m > 0 else {
            gemm(transA: transA, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
            if let bSums { columnSums(y: bSums, x: b, rows: k, cols: n, ld: ldb) }
            return
        }
        precondition(n >= 0 && k >= 0, "gemm: negative extent (m \(m), n \(n), k \(k))")
        precondition(lda >= max(1, transA ? m : k) && ldb >= max(1, n) && ldc >= max(1, n),
                     "gemm: leading dimension too small (lda \(lda), ldb \(ldb), ldc \(ldc) for m \(m), n \(n), k \(k))")
        let plan = planner?.plan(ProductPlanner.Shape(transA: transA, transB: false, m: m, n: n, k: k))
        (plan?.table ?? table).pointee.gemm_summing_b(transA ? 1 : 0, m, n, k, a, lda, b, ldb, c, ldc, bSums,
                                                      plan?.blocking ?? ProductPlanner.Candidate.defaultBlocking)
    }

    /// These kernels with every product run by `candidate` (benchmarks of the planner's choices).
    public func forcing(_ candidate: ProductPlanner.Candidate) -> Kernels {
        Kernels(path: path, planner: ProductPlanner(forcing: candidate))
    }

    /// Runs the fused multiply-add throughput probe for `iterations` rounds (see `KernelBenchmark.peak`).
    func fmaPeak(iterations: Int) -> Float { table.pointee.fma_peak(iterations) }

    /// y[n] (=|+=) x[k] · W[k, n] (row stride ldw): the same chains as `gemm` with m = 1.
    public func gemv(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                     k: Int, n: Int, ldw: Int, accumulate: Bool = false) {
        precondition(k >= 0 && n >= 0 && ldw >= max(1, n), "gemv: bad extents (k \(k), n \(n), ldw \(ldw))")
        table.pointee.gemv(y, x, w, k, n, ldw, accumulate ? 1 : 0)
    }

    /// y[n] (=|+=) W[n, k] · x[k], W row-major with row stride ldw: the chains
    /// of a `gemm(transB: true)` with m = 1 (a [out, in] weight applied to one vector).
    public func gemvRows(y: UnsafeMutablePointer<Float>, w: UnsafePointer<Float>, x: UnsafePointer<Float>,
                         n: Int, k: Int, ldw: Int, accumulate: Bool = false) {
        precondition(k >= 0 && n >= 0 && ldw >= max(1, k), "gemvRows: bad extents (n \(n), k \(k), ldw \(ldw))")
        table.pointee.gemv_rows(y, w, x, n, k, ldw, accumulate ? 1 : 0)
    }

    // MARK: rows and element-wise maps

    func rmsNormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, rows: Int, C: Int, eps: Float) {
        precondition(rows >= 0 && C >= 1)
        table.pointee.rmsnorm_forward(out, rstd, x, w, rows, C, eps)
    }

    func rmsNormBackward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, rstd: UnsafePointer<Float>, w: UnsafePointer<Float>, rows: Int, C: Int) {
        precondition(rows >= 0 && C >= 1)
        table.pointee.rmsnorm_backward(dx, dw, dout, x, rstd, w, rows, C)
    }

    func swigluForward(out: UnsafeMutablePointer<Float>, gu: UnsafePointer<Float>, rows: Int, F: Int) {
        precondition(rows >= 0 && F >= 1)
        table.pointee.swiglu_forward(out, gu, rows, F)
    }

    func swigluBackward(dgu: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, gu: UnsafePointer<Float>, rows: Int, F: Int) {
        precondition(rows >= 0 && F >= 1)
        table.pointee.swiglu_backward(dgu, dout, gu, rows, F)
    }

    func ropeForward(_ x: UnsafeMutablePointer<Float>, heads: Int, headSize: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        precondition(heads >= 0 && headSize >= 2 && headSize % 2 == 0)
        table.pointee.rope_forward(x, heads, headSize, cos, sin)
    }

    func ropeBackward(_ x: UnsafeMutablePointer<Float>, heads: Int, headSize: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        precondition(heads >= 0 && headSize >= 2 && headSize % 2 == 0)
        table.pointee.rope_backward(x, heads, headSize, cos, sin)
    }

    func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                          rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                          w: UnsafePointer<Float>, b: UnsafePointer<Float>, rows: Int, C: Int, eps: Float) {
        precondition(rows >= 0 && C >= 1)
        table.pointee.layernorm_forward(out, mean, rstd, x, w, b, rows, C, eps)
    }

    func layerNormBackward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>,
                           db: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, x: UnsafePointer<Float>,
                           mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, w: UnsafePointer<Float>,
                           rows: Int, C: Int) {
        precondition(rows >= 0 && C >= 1)
        table.pointee.layernorm_backward(dx, dw, db, dout, x, mean, rstd, w, rows, C)
    }

    func softmaxCausal(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int, scale: Float) {
        precondition(valid >= 1 && width >= valid)
        table.pointee.softmax_causal(row, valid, width, scale)
    }

    func softmaxCausalBackward(_ d: UnsafeMutablePointer<Float>, p: UnsafePointer<Float>, n: Int, width: Int,
                               scale: Float) {
        precondition(n >= 0 && width >= n)
        table.pointee.softmax_causal_backward(d, p, n, width, scale)
    }

    func crossEntropy(logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
                      targets: UnsafePointer<Int32>, weights: UnsafePointer<Float>?, rows: Int, V: Int,
                      gradScale: Float?) {
        precondition(rows >= 0 && V >= 1)
        table.pointee.cross_entropy(logits, losses, targets, weights, rows, V, gradScale ?? 0, gradScale == nil ? 0 : 1)
    }

    func geluForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        precondition(n >= 0)
        table.pointee.gelu_forward(out, x, n)
    }

    func geluBackward(dx: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        precondition(n >= 0)
        table.pointee.gelu_backward(dx, dout, x, n)
    }

    func adamW(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
               v: UnsafeMutablePointer<Float>, n: Int, args: SisaAdamWArgs, decays: Bool) {
        precondition(n >= 0)
        withUnsafePointer(to: args) { table.pointee.adamw(p, g, m, v, n, $0, decays ? 1 : 0) }
    }

    func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        precondition(n >= 0)
        return table.pointee.sum_squares(x, n)
    }

    func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        precondition(n >= 0)
        return table.pointee.dot(a, b, n)
    }

    /// dst[r, 0..<cols] = src[r, 0..<cols] for `rows` rows, with non-temporal stores (see CSisaKernels.h).
    func copyRowsStreaming(dst: UnsafeMutablePointer<Float>, ldd: Int, src: UnsafePointer<Float>, lds: Int, rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0 && ldd >= cols && lds >= cols, "copyRowsStreaming: bad extents")
        table.pointee.copy_rows_streaming(dst, ldd, src, lds, rows, cols)
    }

    /// y[c] = Σ_r x[r·ld + c] for c < cols, rows added in order from 0 (a bias gradient).
    public func columnSums(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) {
        precondition(rows >= 0 && cols >= 0 && ld >= max(1, cols), "columnSums: bad extents (rows \(rows), cols \(cols), ld \(ld))")
        table.pointee.column_sums(y, x, rows, cols, ld)
    }
}
