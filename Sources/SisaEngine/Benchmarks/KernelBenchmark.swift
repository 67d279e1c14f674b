import Foundation

/// The matrix products of one training step, at the engine's own shapes,
/// and a timer for them: what `sisa bench gemm` reports.
public enum KernelBenchmark {
    public struct Product: Sendable, Codable {
        public let name: String
        /// "NN", "NT" (B transposed), "TN" (A transposed), or "NTp": B transposed and
        /// packed once beforehand, as a frozen base's forward products read their weights.
        public let op: String
        /// The whole product: for attention, one (batch, head) pair's, over every row.
        public let m: Int, n: Int, k: Int
        /// Independent products of this shape per step (attention: (batch, head) pairs).
        public let count: Int
        /// Attention's products run as the layer runs them: by row blocks over the lower
        /// triangle, against operands packed once per head; nil for the others.
        public let attention: AttentionProduct?
        /// Attention: query heads per key/value head (the backward's parts are groups).
        public var groupSize = 1
        /// Floating-point operations computed: for attention, the row blocks' (about
        /// half of 2 m n k, the masked upper triangle skipped).
        public var flops: Double {
            guard let attention else { return 2 * Double(m) * Double(n) * Double(k) * Double(count) }
            return Double(count) * attention.flops(T: m, headSize: headSize)
        }
        /// Attention: the head's width (k of the products over keys, n of the others).
        var headSize: Int { attention?.keys == true ? k : n }
    }

    /// Attention's six products (Attention.swift), each over one (batch, head) pair.
    public enum AttentionProduct: String, Sendable, Codable {
        /// Forward: S = q kᵀ, y = P v.
        case scores = "q.k^T", values = "P.v"
        /// Backward: dP = dy vᵀ, dq = dS k, dk += dSᵀ q, dv += Pᵀ dy.
        case outputGradient = "dy.v^T", queryGradient = "dS.k", keyGradient = "dS^T.q", valueGradient = "P^T.dy"

        /// Products whose columns are keys (n = T); the others' columns are a head's values (n = hs).
        var keys: Bool { self == .scores || self == .outputGradient }

        /// FLOPs of one (batch, head) pair's row blocks: block r0 ..< r1 multiplies
        /// (r1 - r0) rows by r1 keys (or gathers rows r0 ..< T), times hs.
        func flops(T: Int, headSize hs: Int) -> Double {
            var total = 0.0
            for r0 in stride(from: 0, to: T, by: Attention.block) {
                let r1 = min(T, r0 + Attention.block)
                let inner = (self == .keyGradient || self == .valueGradient) ? T - r0 : r1
                total += 2 * Double(r1 - r0) * Double(inner) * Double(hs)
            }
            return total
        }
    }

    /// Every distinct product of a training step of `config` with `batch` sequences.
    public static func trainingProducts(config c: GPT2Configuration, batch: Int) -> [Product] {
        let M = batch * c.context, C = c.dim, V = c.vocab, hs = c.headSize
        func p(_ name: String, _ op: String, _ m: Int, _ n: Int, _ k: Int, _ count: Int = 1) -> Product {
            Product(name: name, op: op, m: m, n: n, k: k, count: count, attention: nil)
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
        ] + attentionProducts(T: c.context, headSize: hs, units: batch * c.heads, groupSize: 1)
    }

    /// Attention's products over `units` (batch, head) pairs, as whole products per pair
    /// (m x n x k; scripts/bench-gemm times numpy on these) whose row blocks the layer runs.
    static func attentionProducts(T: Int, headSize hs: Int, units: Int, groupSize: Int) -> [Product] {
        func p(_ a: AttentionProduct, _ op: String, _ m: Int, _ n: Int, _ k: Int) -> Product {
            Product(name: "attention " + a.rawValue, op: op, m: m, n: n, k: k, count: units, attention: a, groupSize: groupSize)
        }
        return [p(.scores, "NT", T, T, hs), p(.values, "NN", T, hs, T),
                p(.outputGradient, "NT", T, T, hs), p(.queryGradient, "NN", T, hs, T),
                p(.keyGradient, "TN", T, hs, T), p(.valueGradient, "TN", T, hs, T)]
    }

    /// Every distinct product of a training step of a llama model with `batch` rows of `context`
    /// tokens: forward and input gradients of the fused projections and the head (what LoRA on a
    /// frozen base runs), the weight gradients of full fine-tuning, and attention's.
    public static func trainingProducts(llama c: LlamaConfiguration, batch: Int, context T: Int) -> [Product] {
        let M = batch * T, C = c.dim, F = c.ffDim, V = c.vocab, hs = c.headDim
        func p(_ name: String, _ op: String, _ m: Int, _ n: Int, _ k: Int, _ count: Int = 1) -> Product {
            Product(name: name, op: op, m: m, n: n, k: k, count: count, attention: nil)
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
        ] + attentionProducts(T: T, headSize: hs, units: batch * c.heads, groupSize: c.heads / c.kvHeads)
    }

    /// GFLOP/s of `product` on `kernels`, split over `pool` the engine's way
    /// (as the layers split it, or one product per part when there are several),
    /// best of `repeats` timings of at least `minSeconds` each.
    public static func measure(_ product: Product, kernels: Kernels, pool: WorkerPool,
                               minSeconds: Double = 0.2, repeats: Int = 3) -> Double {
        if let attention = product.attention {
            return measure(attention, product, kernels: kernels, pool: pool, minSeconds: minSeconds, repeats: repeats)
        }
        let transA = product.op == "TN", transB = product.op.hasPrefix("NT")
        let (m, n, k) = (product.m, product.n, product.k)
        let count = product.count
        let a = FloatBuffer(count: m * k * count), b = FloatBuffer(count: k * n * count), c = FloatBuffer(count: m * n * count)
        var rng = Xoshiro256(seed: 7)
        for i in 0..<a.count { a[i] = Float(rng.nextDouble() - 0.5) }
        for i in 0..<b.count { b[i] = Float(rng.nextDouble() - 0.5) }
        let lda = transA ? m : k, ldb = transB ? k : n
        // The layers' splits: weight gradients (A transposed) along their wider side, one part
        // per thread; the other products as `Kernels.product` runs them (rows of 256 over a
        // weight packed once, or columns of 64 when rows are few).
        if product.op == "NTp" {
            // The frozen-weight layers' own split (Projection.forward with panels).
            let panels = kernels.packPanels(b: b.pointer, ldb: k, transB: true, k: k, n: n)
            return time(product, repeats: repeats, minSeconds: minSeconds) {
                Projection.forward(out: c.pointer, inp: a.pointer, panels: panels, M: m, kernels: kernels, pool: pool)
            }
        }
        func once() {
            if count == 1 && transA {
                pool.weightGradientBlocks(rows: m, columns: n, grain: Linear.colGrain) { rows, cols in
                    kernels.gemm(transA: true, transB: transB, m: rows.count, n: cols.count, k: k,
                                 a: a.pointer + rows.lowerBound, lda: lda, b: b.pointer + (transB ? cols.lowerBound * k : cols.lowerBound),
                                 ldb: ldb, c: c.pointer + rows.lowerBound * n + cols.lowerBound, ldc: n)
                }
                return
            }
            if count == 1 {
                kernels.product(transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                                c: c.pointer, ldc: n, rowGrain: Linear.rowGrain, pool: pool)
                return
            }
            pool.run(parts: count) { part, _ in
                kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer + part * m * k, lda: lda,
                             b: b.pointer + part * k * n, ldb: ldb, c: c.pointer + part * m * n, ldc: n)
            }
        }
        return time(product, repeats: repeats, minSeconds: minSeconds, once)
    }

    /// The path and blocking a product runs with: for attention, the layer's choice for
    /// its row blocks (Attention.panelProducts), else the planner's for the whole product.
    public static func plan(of p: Product, kernels: Kernels) -> ProductPlanner.Candidate? {
        guard let planner = kernels.planner else { return nil }
        guard let a = p.attention else {
            return planner.plan(.init(transA: p.op == "TN", transB: p.op.hasPrefix("NT"), m: p.m, n: p.n, k: p.k))
        }
        return planner.plan(Attention.panelShapes(T: p.m, headSize: p.headSize)[a.keys ? 0 : 1])
    }

    /// GFLOP/s of one of attention's products the way Attention.forward and backward run
    /// it: the forward's parts are (batch, head) pairs, the backward's (batch, group) pairs
    /// with the group's heads in turn; each packs the operand its row blocks share
    /// (PanelProducts: kᵀ or v per head, vᵀ or k per group, q or dy per head) and multiplies
    /// block by block over the lower triangle, the key and value gradients chaining onto
    /// the group's first head. Each head has its own q, k, v, dy [T, hs] and output. The
    /// [T, T] operand or output (a block of P or dS) is the thread's scratch, warm in its
    /// cache as in the layer. Left out, as they are not products: the softmax and its
    /// gradient, and the forward's streaming of each P block to the saved matrix.
    private static func measure(_ which: AttentionProduct, _ product: Product, kernels: Kernels, pool: WorkerPool,
                                minSeconds: Double, repeats: Int) -> Double {
        let T = product.m, hs = product.headSize, units = product.count, block = Attention.block
        let forward = which == .scores || which == .values
        let group = forward ? 1 : max(1, product.groupSize)
        let perGroup = which == .outputGradient || which == .queryGradient  // vᵀ or k: one per group
        let (keys, width) = Attention.panelProducts(T: T, headSize: hs, kernels: kernels)
        var rng = Xoshiro256(seed: 7)
        func random(_ n: Int) -> FloatBuffer {
            let b = FloatBuffer(count: n)
            for i in 0..<n { b[i] = Float(rng.nextDouble() - 0.5) }
            return b
        }
        // The packed operand ([T, hs] or its transpose) and what multiplies it, per head.
        let operand = random(units * T * hs), rows = random(units * T * hs)
        let out = FloatBuffer(count: units * T * hs), square = random(pool.threads * T * T)
        // op(B) packed: kᵀ or vᵀ [hs, T] (stored transposed) for the products over keys, else [T, hs].
        let run = which.keys ? keys : width, (packedK, packedN) = which.keys ? (hs, T) : (T, hs)
        let packedFloats = run.floats(k: packedK, n: packedN)
        func once() {
            pool.run(parts: units / group) { part, thread in
                let panels = run.scratch(floats: packedFloats), s = square.pointer + thread * T * T
                for member in 0..<group {
                    let u = part * group + member
                    if member == 0 || !perGroup {
                        run.pack(panels, b: operand.pointer + u * T * hs, ldb: hs, transB: which.keys, k: packedK, n: packedN)
                    }
                    let x = rows.pointer + u * T * hs, o = out.pointer + u * T * hs
                    for r0 in stride(from: 0, to: T, by: block) {
                        let r1 = min(T, r0 + block)
                        switch which {
                        case .scores, .outputGradient:  // [r1 - r0, r1] = rows · operandᵀ, into P's block or dS
                            run.gemm(m: r1 - r0, n: r1, k: hs, a: x + r0 * hs, lda: hs, panels: panels, packedK: hs,
                                     c: s + (which == .scores ? 0 : r0 * T), ldc: T)
                        case .values, .queryGradient:  // [r1 - r0, hs] = (P or dS)[r0..<r1, 0..<r1] · operand
                            run.gemm(m: r1 - r0, n: hs, k: r1, a: s + (which == .values ? 0 : r0 * T), lda: T, panels: panels,
                                     packedK: T, c: o + r0 * hs, ldc: hs)
                        case .keyGradient, .valueGradient:  // [r1 - r0, hs] (+)= (dS or P)[r0..<T, r0..<r1]ᵀ · operand[r0..<T]
                            run.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: s + r0 * T + r0, lda: T, panels: panels,
                                     packedK: T, row: r0, c: out.pointer + part * group * T * hs + r0 * hs, ldc: hs,
                                     accumulate: member > 0)
                        }
                    }
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
