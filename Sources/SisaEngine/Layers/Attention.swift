// Causal self-attention with grouped key/value heads, over q, k, v stored
// side by side in one activation (GPT-2's fused qkv, llama's fused q|k|v).
//
//   q [B, T, H·hs], k and v [B, T, Hkv·hs], all rows `stride` floats apart;
//   query head h reads key/value head g = h / (H / Hkv); s = 1 / sqrt(hs).
//   forward:  S = q_h k_gᵀ            [B, H, T, T] (lower triangle only)
//             P = softmax_rows(s S)   (kept for backward in `att`)
//             y_h = P v_g             y [B, T, H·hs]
//   backward: dP = dy_h v_gᵀ; dv_g += Pᵀ dy_h
//             dS = s P ⊙ (dP − rowsum(P ⊙ dP))   (the scale folded in here)
//             dq_h = dS k_g; dk_g += dSᵀ q_h
// GPT-2 is the case Hkv = H. A group's query heads are summed into its dk
// and dv in head order, by chaining each product onto the last, so the
// bits do not depend on threads.
//
// Every product is a kernel gemm, cut into row blocks so the masked upper
// triangle is mostly skipped (with T=128 and 32-row blocks, 5/8 of the full
// square is computed; 64-row blocks computed 3/4, and attention took 5-10%
// longer). The block does not change the bits: a smaller one only drops
// terms whose P or dS is an exact 0 from the ends of a chain, and adding
// ±0 leaves a sum as it is (a chain from +0 never becomes -0).
// A (batch, head) pair is one part of the forward; a (batch, group) pair one
// part of the backward. Each part packs the operands its row blocks share
// (keys, values, a head's queries and output gradient) once (PanelProducts).
// The forward computes each block of P in a scratch that stays in cache and
// streams it to the saved matrix with non-temporal stores: written in place,
// every line of that cold matrix was first read for ownership (small preset:
// the forward's attention 18.0-19.7 ms a step against 19.3-21.5).

public struct AttentionShape: Sendable {
    public let B: Int, T: Int
    public let heads: Int, kvHeads: Int, headSize: Int
    /// Row stride of the q/k/v activation, and where k and v start in a row.
    public let stride: Int, kOffset: Int, vOffset: Int
    /// Row stride of y (and dy).
    public let yStride: Int

    public var groupSize: Int { heads / kvHeads }

    public init(B: Int, T: Int, heads: Int, kvHeads: Int, headSize: Int, stride: Int, kOffset: Int, vOffset: Int, yStride: Int) {
        precondition(B >= 0 && T >= 1 && kvHeads >= 1 && heads % kvHeads == 0 && headSize >= 1, "attention: bad shape")
        precondition(kOffset >= heads * headSize && vOffset >= kOffset + kvHeads * headSize && stride >= vOffset + kvHeads * headSize
                     && yStride >= heads * headSize, "attention: q, k and v do not fit their rows")
        self.B = B
        self.T = T
        self.heads = heads
        self.kvHeads = kvHeads
        self.headSize = headSize
        self.stride = stride
        self.kOffset = kOffset
        self.vOffset = vOffset
        self.yStride = yStride
    }
}

public enum Attention {
    public static let block = 32

    /// The products over a head's keys (q·kᵀ, dy·vᵀ: n = T) and over its width (P·v, dS·k,
    /// dSᵀ·q, Pᵀ·dy: n = hs), each run on one path so the panels it packs are the ones it reads.
    static func panelProducts(T: Int, headSize: Int, kernels: Kernels) -> (keys: PanelProducts, width: PanelProducts) {
        let shapes = panelShapes(T: T, headSize: headSize)
        return (kernels.panelProducts(for: shapes[0]), kernels.panelProducts(for: shapes[1]))
    }

    /// The shapes the two runs are planned for: a row block against every key, and against a head's values.
    static func panelShapes(T: Int, headSize hs: Int) -> [ProductPlanner.Shape] {
        [.init(transA: false, transB: true, m: block, n: T, k: hs), .init(transA: false, transB: false, m: block, n: hs, k: T)]
    }

    public static func forward(y: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                               shape s: AttentionShape, kernels: Kernels, pool: WorkerPool) {
        let T = s.T, hs = s.headSize, ld = s.stride
        let scale = 1 / Float(hs).squareRoot()
        let (keys, width) = panelProducts(T: T, headSize: hs, kernels: kernels)
        let kFloats = keys.floats(k: hs, n: T), vFloats = width.floats(k: T, n: hs)
        pool.run(parts: s.B * s.heads) { unit, _ in
            let b = unit / s.heads, h = unit % s.heads, g = h / s.groupSize
            let row0 = qkv + b * T * ld
            let q = row0 + h * hs, k = row0 + s.kOffset + g * hs, v = row0 + s.vOffset + g * hs
            let P = att + unit * T * T
            let out = y + b * T * s.yStride + h * hs
            // kᵀ [hs, T] and v [T, hs] packed once, read by every row block; a block of P
            // is computed in a scratch that stays in cache, then streamed to `att`.
            let kT = keys.scratch(floats: kFloats + vFloats + block * T), vP = kT + kFloats, Pb = vP + vFloats
            keys.pack(kT, b: k, ldb: ld, transB: true, k: hs, n: T)
            width.pack(vP, b: v, ldb: ld, transB: false, k: T, n: hs)
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + block)
                // S[r0..<r1, 0..<r1] = q[r0..<r1] · k[0..<r1]^T
                keys.gemm(m: r1 - r0, n: r1, k: hs, a: q + r0 * ld, lda: ld, panels: kT, packedK: hs, c: Pb, ldc: T)
                for i in r0..<r1 { kernels.softmaxCausal(Pb + (i - r0) * T, valid: i + 1, width: r1, scale: scale) }
                // y[r0..<r1] = P[r0..<r1, 0..<r1] · v[0..<r1]
                width.gemm(m: r1 - r0, n: hs, k: r1, a: Pb, lda: T, panels: vP, packedK: T,
                           c: out + r0 * s.yStride, ldc: s.yStride)
                kernels.copyRowsStreaming(dst: P + r0 * T, ldd: T, src: Pb, lds: T, rows: r1 - r0, cols: r1)
                r0 = r1
            }
        }
    }

    /// Writes dqkv (overwritten) from dy. `scratch` holds threads * T * T floats.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                att: UnsafePointer<Float>, shape s: AttentionShape, scratch: UnsafeMutablePointer<Float>,
                                kernels: Kernels, pool: WorkerPool) {
        let T = s.T, hs = s.headSize, ld = s.stride
        let scale = 1 / Float(hs).squareRoot()
        let (keys, width) = panelProducts(T: T, headSize: hs, kernels: kernels)
        let vTFloats = keys.floats(k: hs, n: T), columnFloats = width.floats(k: T, n: hs)
        pool.run(parts: s.B * s.kvHeads) { unit, thread in
            let b = unit / s.kvHeads, g = unit % s.kvHeads
            let row0 = qkv + b * T * ld, drow0 = dqkv + b * T * ld
            let k = row0 + s.kOffset + g * hs, v = row0 + s.vOffset + g * hs
            let dk = drow0 + s.kOffset + g * hs, dv = drow0 + s.vOffset + g * hs
            let dS = scratch + thread * T * T
            // The group's vᵀ [hs, T] and k [T, hs], then each member head's q and dy [T, hs],
            // packed once and read by every row block.
            let vT = keys.scratch(floats: vTFloats + 3 * columnFloats)
            let kP = vT + vTFloats, qP = kP + columnFloats, dyP = qP + columnFloats
            keys.pack(vT, b: v, ldb: ld, transB: true, k: hs, n: T)
            width.pack(kP, b: k, ldb: ld, transB: false, k: T, n: hs)
            for member in 0..<s.groupSize {
                let h = g * s.groupSize + member
                let q = row0 + h * hs, dq = drow0 + h * hs
                let P = att + (b * s.heads + h) * T * T
                let gy = dy + b * T * s.yStride + h * hs
                width.pack(qP, b: q, ldb: ld, transB: false, k: T, n: hs)
                width.pack(dyP, b: gy, ldb: s.yStride, transB: false, k: T, n: hs)
                // The first head of a group writes dk and dv; the others continue their chains.
                let chain = member > 0
                var r0 = 0
                while r0 < T {
                    let r1 = min(T, r0 + block)
                    // dP[r0..<r1, 0..<r1] = dy[r0..<r1] · v[0..<r1]^T
                    keys.gemm(m: r1 - r0, n: r1, k: hs, a: gy + r0 * s.yStride, lda: s.yStride, panels: vT, packedK: hs,
                              c: dS + r0 * T, ldc: T)
                    // dS = s P ⊙ (dP - rowsum(P ⊙ dP)), zero above the diagonal
                    for i in r0..<r1 {
                        kernels.softmaxCausalBackward(dS + i * T, p: P + i * T, n: i + 1, width: r1, scale: scale)
                    }
                    r0 = r1
                }
                r0 = 0
                while r0 < T {
                    let r1 = min(T, r0 + block)
                    // dq[r0..<r1] = dS[r0..<r1, 0..<r1] · k[0..<r1]
                    width.gemm(m: r1 - r0, n: hs, k: r1, a: dS + r0 * T, lda: T, panels: kP, packedK: T, c: dq + r0 * ld, ldc: ld)
                    // Rows r0..<r1 of dk and dv gather from query rows r0..<T (lower triangle):
                    // dk[r0..<r1] (+)= dS[r0..<T, r0..<r1]^T · q[r0..<T]
                    width.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: dS + r0 * T + r0, lda: T,
                               panels: qP, packedK: T, row: r0, c: dk + r0 * ld, ldc: ld, accumulate: chain)
                    // dv[r0..<r1] (+)= P[r0..<T, r0..<r1]^T · dy[r0..<T]
                    width.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: P + r0 * T + r0, lda: T,
                               panels: dyP, packedK: T, row: r0, c: dv + r0 * ld, ldc: ld, accumulate: chain)
                    r0 = r1
                }
            }
        }
    }
}
