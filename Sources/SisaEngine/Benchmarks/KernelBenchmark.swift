import Foundation

/// The matrix products of one training step, at the engine's own shapes,
/// and a timer for them: what `sisa bench gemm` reports.
public enum KernelBenchmark {
    public struct Product: Sendable, Codable {
        public let name: String
        /// "NN", "NT" (B transposed), "TN" (A transposed), or "NTp": B transposed and
        /// packed once beforehand, as a frozen base's forward products read their weights.
        public let op: String
        public let m: Int, n: Int, k: Int
        /// Independent products of this shape per step (attention: one per head and row block).
        public let count: Int
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(count) }
    }

    /// Every distinct product of a training step of `config` with `batch` sequences.
    public static func trainingProducts(config c: GPT2Configuration, batch: Int) -> [Product] {
        let M = batch * c.context, C = c.dim, V = c.vocab, hs = c.headSize
        let blocks = (c.context + Attention.block - 1) / Attention.block
        let rb = min(c.context, Attention.block)
        func p(_ name: String, _ op: String, _ m: Int, _ n: Int, _ k: Int, _ count: Int = 1) -> Product {
            Product(name: name, op: op, m: m, n: n, k: k, count: count)
        }
        return [
            p("qkv forward", "NN", M, 3 * C, C), p("proj forward", "NN", M, C, C),
            p("fc forward", "NN", M, 4 * C, C), p("fc2 forward", "NN", M, C, 4 * C),
            p("head forward", "NT", M, V, C),
            p("qkv dinp", "NT", M, C, 3 * C), p("proj dinp", "NT", M, C, C),
            p("fc dinp", "NT", M, C, 4 * C), p("fc2 dinp", "NT", M, 4 * C, C),
            p("head dx", "NN", M, C, V),
            p("qkv dw", "TN", C, 3 * C, M), p("proj dw", "TN", C, C, M),
            p("fc dw", "TN", C, 4 * C, M), p("fc2 dw", "TN", 4 * C, C, M),
            p("head dwte", "TN", V, C, M),
            p("attention q.k^T", "NT", rb, c.context, hs, batch * c.heads * blocks),
            p("attention P.v", "NN", rb, hs, c.context, batch * c.heads * blocks),
            p("attention dS^T.q", "TN", rb, hs, c.context, batch * c.heads * blocks),
        ]
    }

    /// Every distinct product of a training step of a llama model with `batch` rows of `context`
    /// tokens: forward and input gradients of the fused projections and the head (what LoRA on a
    /// frozen base runs), the weight gradients of full fine-tuning, and attention's.
    public static func trainingProducts(llama c: LlamaConfiguration, batch: Int, context T: Int) -> [Product] {
        let M = batch * T, C = c.dim, F = c.ffDim, V = c.vocab, hs = c.headDim
        let blocks = (T + Attention.block - 1) / Attention.block, rb = min(T, Attention.block)
        func p(_ name: String, _ op: String, _ m: Int, _ n: Int, _ k: Int, _ count: Int = 1) -> Product {
            Product(name: name, op: op, m: m, n: n, k: k, count: count)
        }
        return [
            p("q|k|v forward", "NT", M, c.qkvWidth, C), p("o forward", "NT", M, C, c.qWidth),
            p("gate|up forward", "NT", M, 2 * F, C), p("down forward", "NT", M, C, F), p("head forward", "NT", M, V, C),
            p("q|k|v fwd frozen", "NTp", M, c.qkvWidth, C), p("o fwd frozen", "NTp", M, C, c.qWidth),
            p("gate|up fwd frozen", "NTp", M, 2 * F, C), p("down fwd frozen", "NTp", M, C, F), p("head fwd frozen", "NTp", M, V, C),
            p("q|k|v dinp", "NN", M, C, c.qkvWidth), p("o dinp", "NN", M, c.qWidth, C),
            p("gate|up dinp", "NN", M, C, 2 * F), p("down dinp", "NN", M, F, C), p("head dx", "NN", M, C, V),
            p("q|k|v dw (full)", "TN", c.qkvWidth, C, M), p("o dw (full)", "TN", C, c.qWidth, M),
            p("gate|up dw (full)", "TN", 2 * F, C, M), p("down dw (full)", "TN", C, F, M),
            p("attention q.k^T", "NT", rb, T, hs, batch * c.heads * blocks),
            p("attention P.v", "NN", rb, hs, T, batch * c.heads * blocks),
            p("attention dS^T.q", "TN", rb, hs, T, batch * c.heads * blocks),
        ]
    }

    /// GFLOP/s of `product` on `kernels`, split over `pool` the engine's way
    /// (rows of 256, or columns of 64 when M is small, or one product per part),
    /// best of `repeats` timings of at least `minSeconds` each.
    public static func measure(_ product: Product, kernels: Kernels, pool: WorkerPool,
                               minSeconds: Double = 0.2, repeats: Int = 3) -> Double {
        let transA = product.op == "TN", transB = product.op.hasPrefix("NT")
        let (m, n, k) = (product.m, product.n, product.k)
        let count = product.count
        let a = FloatBuffer(count: m * k * count), b = FloatBuffer(count: k * n * count), c = FloatBuffer(count: m * n * count)
        var rng = Xoshiro256(seed: 7)
        for i in 0..<a.count { a[i] = Float(rng.nextDouble() - 0.5) }
        for i in 0..<b.count { b[i] = Float(rng.nextDouble() - 0.5) }
        let lda = transA ? m : k, ldb = transB ? k : n
        // The layers' splits: weight gradients (A transposed) by column, one part per thread;
        // other long products by rows of 256; the rest by columns of 64.
        let byRows = count == 1 && m >= 512 && !transA
        let parts = count > 1 ? count : byRows ? partCount(m, grain: Linear.rowGrain)
            : transA ? pool.productParts(n, grain: Linear.colGrain) : partCount(n, grain: Linear.colGrain)
        if product.op == "NTp" {
            // The frozen-weight layers' own split (Projection.forward with panels).
            let panels = kernels.packPanels(b: b.pointer, ldb: k, transB: true, k: k, n: n)
            return time(product, repeats: repeats, minSeconds: minSeconds) {
                Projection.forward(out: c.pointer, inp: a.pointer, panels: panels, M: m, kernels: kernels, pool: pool)
            }
        }
        func once() {
            pool.run(parts: parts) { part, _ in
                if count > 1 {
                    kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer + part * m * k, lda: lda,
                                 b: b.pointer + part * k * n, ldb: ldb, c: c.pointer + part * m * n, ldc: n)
                } else if byRows {
                    let r = partRange(part, of: parts, total: m)
                    kernels.gemm(transA: transA, transB: transB, m: r.count, n: n, k: k,
                                 a: a.pointer + (transA ? r.lowerBound : r.lowerBound * k), lda: lda,
                                 b: b.pointer, ldb: ldb, c: c.pointer + r.lowerBound * n, ldc: n)
                } else {
                    let cols = partRange(part, of: parts, total: n)
                    kernels.gemm(transA: transA, transB: transB, m: m, n: cols.count, k: k, a: a.pointer, lda: lda,
                                 b: b.pointer + (transB ? cols.lowerBound * k : cols.lowerBound), ldb: ldb,
                                 c: c.pointer + cols.lowerBound, ldc: n)
                }
            }
        }
        return time(product, repeats: repeats, minSeconds: minSeconds, once)
    }

    /// Best GFLOP/s of `repeats` timings of `once` (after one untimed run), each at least `minSeconds` long.
    private static func time(_ product: Product, repeats: Int, minSeconds: Double, _ once: () -> Void) -> Double {
        once()
        var best = 0.0
        for _ in 0..<repeats {
            var reps = 0
            let t0 = DispatchTime.now().uptimeNanoseconds
            var dt = 0.0
            repeat {
                once()
                reps += 1
                dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            } while dt < minSeconds
            best = max(best, product.flops * Double(reps) / dt / 1e9)
        }
        return best
    }

    /// The machine's fused multiply-add peak in GFLOP/s: 12 independent
    /// vector FMA chains per thread (the widest path this CPU runs), on
    /// every thread of `pool` at once, best of `repeats` timings.
    public static func peakGFLOPS(pool: WorkerPool, repeats: Int = 3) -> (gflops: Double, path: KernelPath) {
        let path = Kernels.availablePaths[0]
        let k = Kernels(path)!
        let lanes = path == .avx512 ? 16 : path == .avx2 ? 8 : 1
        let iterations = 20_000_000
        var best = 0.0
        var sink: Float = 0
        for _ in 0..<repeats {
            var results = [Float](repeating: 0, count: pool.threads)
            let t0 = DispatchTime.now().uptimeNanoseconds
            results.withUnsafeMutableBufferPointer { out in
                let o = out.baseAddress!
                pool.run(parts: pool.threads) { part, _ in o[part] = k.fmaPeak(iterations: iterations) }
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            sink += results.reduce(0, +)
            best = max(best, Double(iterations) * 12 * Double(lanes) * 2 * Double(pool.threads) / dt / 1e9)
        }
        if sink.isNaN { print("") }  // keeps the probe's results alive
        return (best, path)
    }
}
