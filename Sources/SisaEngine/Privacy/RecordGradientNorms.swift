import Foundation

/// Each record's squared gradient norm, summed tensor by tensor while the
/// activations-only backward pass runs (DP-SGD's per-record clipping).
///
/// A record occupies a contiguous span of batch positions (its rows, the
/// last one cut at its final target), and rows never mix in a transformer,
/// so a tensor's per-record gradient is a function of that span alone:
///
///   linear  y = x·W + b over the span's n positions, x [n, K], g = dy [n, N]
///     dW_i = x^T g [K, N]   db_i = Σ_t g_t [N]
///     ||dW_i||² either directly (one [K, N] product, 2nKN flops) or by the
///     ghost-norm identity ||x^T g||² = Σ_{t,s} (x_t·x_s)(g_t·g_s)
///     (Li et al. 2021; Bu et al. 2022), 2n²(K+N) flops: whichever is
///     cheaper for this record, as in mixed ghost clipping.
///   LayerNorm  dw_i = Σ_t g_t ∘ xhat_t, db_i = Σ_t g_t (cheap, direct)
///   tied wte   head share dlogits^T x [V, C] plus the lookup's scatter of
///     dx rows, summed before the norm (one tensor, one norm); wpe the
///     span's dx rows added by position.
///
/// Records are processed in parallel, each by one thread in a fixed order,
/// so the norms are deterministic whatever the thread count.
public final class RecordGradientNorms {
    public let spans: [Range<Int>]
    /// Σ over tensors so far of each record's squared gradient norm.
    public private(set) var squaredNorms: [Double]
    let kernels: Kernels
    let pool: WorkerPool
    private var scratch: [FloatBuffer]

    public init(spans: [Range<Int>], kernels: Kernels, pool: WorkerPool) {
        self.spans = spans
        self.kernels = kernels
        self.pool = pool
        squaredNorms = [Double](repeating: 0, count: spans.count)
        scratch = []
    }

    public var norms: [Double] { squaredNorms.map { $0.squareRoot() } }

    /// Per-thread scratch of at least `floats` floats.
    private func ensureScratch(_ floats: Int) {
        if scratch.count < pool.threads || scratch.contains(where: { $0.count < floats }) {
            let size = max(floats, scratch.first?.count ?? 0)
            scratch = (0..<pool.threads).map { _ in FloatBuffer(count: size) }
        }
    }

    /// Runs `body(record, scratch)` for every non-empty record in parallel and adds what it returns.
    private func accumulate(scratchFloats: Int, _ body: (Int, UnsafeMutablePointer<Float>) -> Double) {
        ensureScratch(scratchFloats)
        let bufs = scratch.map(\.pointer)
        var add = [Double](repeating: 0, count: spans.count)
        add.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            pool.run(parts: spans.count) { i, thread in
                if !spans[i].isEmpty { o[i] = body(i, bufs[thread]) }
            }
        }
        for i in 0..<spans.count { squaredNorms[i] += add[i] }
    }

    /// The ghost identity is cheaper when n (K + N) < K N.
    static func prefersGhost(n: Int, K: Int, N: Int) -> Bool { n * (K + N) < K * N }

    /// Weight [K, N] and bias [N] of a linear layer: x = inp [BT, K], g = dout [BT, N].
    func linear(inp: UnsafePointer<Float>, dout: UnsafePointer<Float>, K: Int, N: Int) {
        // Ghost records are short by construction (n < KN / (K + N)), so their n² scratch stays small.
        let ghost = spans.map(\.count).filter { RecordGradientNorms.prefersGhost(n: $0, K: K, N: N) }.max() ?? 0
        let need = N + max(K * N, 2 * ghost * ghost)
        accumulate(scratchFloats: need) { i, buf in
            let span = spans[i], n = span.count
            let x = inp + span.lowerBound * K, g = dout + span.lowerBound * N
            var s = 0.0
            if RecordGradientNorms.prefersGhost(n: n, K: K, N: N) {
                let gx = buf + N, gg = gx + n * n
                kernels.gemm(transB: true, m: n, n: n, k: K, a: x, lda: K, b: x, ldb: K, c: gx, ldc: n)
                kernels.gemm(transB: true, m: n, n: n, k: N, a: g, lda: N, b: g, ldb: N, c: gg, ldc: n)
                for j in 0..<(n * n) { s += Double(gx[j]) * Double(gg[j]) }
            } else {
                let dw = buf + N
                kernels.gemm(transA: true, m: K, n: N, k: n, a: x, lda: K, b: g, ldb: N, c: dw, ldc: N)
                s = kernels.sumOfSquares(dw, K * N)
            }
            Linear.columnSums(buf, g, rows: n, cols: N, ld: N)
            return s + kernels.sumOfSquares(buf, N)
        }
    }

    /// Gain and bias [C] of a LayerNorm whose input was x [BT, C] (mean, rstd [BT]), g = dout [BT, C].
    func layerNorm(dout: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                   rstd: UnsafePointer<Float>, C: Int) {
        accumulate(scratchFloats: 2 * C) { i, buf in
            let dw = buf, db = buf + C
            dw.update(repeating: 0, count: 2 * C)
            for t in spans[i] {
                let xr = x + t * C, gr = dout + t * C, m = mean[t], r = rstd[t]
                for c in 0..<C {
                    dw[c] += gr[c] * ((xr[c] - m) * r)
                    db[c] += gr[c]
                }
            }
            return kernels.sumOfSquares(buf, 2 * C)
        }
    }

    /// The tied token embedding wte [V, C] (head: dlogits [BT, V], x = final
    /// LayerNorm output [BT, C]; lookup: dx [BT, C] at tokens [BT]) and the
    /// position embedding (rows of dx by position t mod T).
    func embeddings(dlogits: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafePointer<Float>,
                    tokens: UnsafePointer<Int32>, T: Int, C: Int, V: Int) {
        accumulate(scratchFloats: V * C + T * C) { i, buf in
            let span = spans[i], n = span.count
            let dwte = buf, dwpe = buf + V * C
            kernels.gemm(transA: true, m: V, n: C, k: n, a: dlogits + span.lowerBound * V, lda: V,
                         b: x + span.lowerBound * C, ldb: C, c: dwte, ldc: C)
            dwpe.update(repeating: 0, count: T * C)
            for t in span {
                addInPlace(dwte + Int(tokens[t]) * C, dx + t * C, C)
                addInPlace(dwpe + (t % T) * C, dx + t * C, C)
            }
            return kernels.sumOfSquares(dwte, V * C) + kernels.sumOfSquares(dwpe, T * C)
        }
    }
}
