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
// part of the backward.

struct AttentionShape {
    let B: Int, T: Int
    let heads: Int, kvHeads: Int, headSize: Int
    /// Row stride of the q/k/v activation, and where k and v start in a row.
    let stride: Int, kOffset: Int, vOffset: Int
    /// Row stride of y (and dy).
    let yStride: Int

    var groupSize: Int { heads / kvHeads }
}

enum Attention {
    static let block = 32

    static func forward(y: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                        shape s: AttentionShape, kernels: Kernels, pool: WorkerPool) {
        let T = s.T, hs = s.headSize, ld = s.stride
        let scale = 1 / Float(hs).squareRoot()
        pool.run(parts: s.B * s.heads) { unit, _ in
            let b = unit / s.heads, h = unit % s.heads, g = h / s.groupSize
            let row0 = qkv + b * T * ld
            let q = row0 + h * hs, k = row0 + s.kOffset + g * hs, v = row0 + s.vOffset + g * hs
            let P = att + unit * T * T
            let out = y + b * T * s.yStride + h * hs
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + block)
                // S[r0..<r1, 0..<r1] = q[r0..<r1] · k[0..<r1]^T
                kernels.gemm(transB: true, m: r1 - r0, n: r1, k: hs, a: q + r0 * ld, lda: ld, b: k, ldb: ld, c: P + r0 * T, ldc: T)
                for i in r0..<r1 { kernels.softmaxCausal(P + i * T, valid: i + 1, width: r1, scale: scale) }
                // y[r0..<r1] = P[r0..<r1, 0..<r1] · v[0..<r1]
                kernels.gemm(m: r1 - r0, n: hs, k: r1, a: P + r0 * T, lda: T, b: v, ldb: ld, c: out + r0 * s.yStride, ldc: s.yStride)
                r0 = r1
            }
        }
    }

    /// Writes dqkv (overwritten) from dy. `scratch` holds threads * T * T floats.
    static func backward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                         att: UnsafePointer<Float>, shape s: AttentionShape, scratch: UnsafeMutablePointer<Float>,
                         kernels: Kernels, pool: WorkerPool) {
        let T = s.T, hs = s.headSize, ld = s.stride
        let scale = 1 / Float(hs).squareRoot()
        pool.run(parts: s.B * s.kvHeads) { unit, thread in
            let b = unit / s.kvHeads, g = unit % s.kvHeads
            let row0 = qkv + b * T * ld, drow0 = dqkv + b * T * ld
            let k = row0 + s.kOffset + g * hs, v = row0 + s.vOffset + g * hs
            let dk = drow0 + s.kOffset + g * hs, dv = drow0 + s.vOffset + g * hs
            let dS = scratch + thread * T * T
            for member in 0..<s.groupSize {
                let h = g * s.groupSize + member
                let q = row0 + h * hs, dq = drow0 + h * hs
                let P = att + (b * s.heads + h) * T * T
                let gy = dy + b * T * s.yStride + h * hs
                // The first head of a group writes dk and dv; the others continue their chains.
                let chain = member > 0
                var r0 = 0
                while r0 < T {
                    let r1 = min(T, r0 + block)
                    // dP[r0..<r1, 0..<r1] = dy[r0..<r1] · v[0..<r1]^T
                    kernels.gemm(transB: true, m: r1 - r0, n: r1, k: hs, a: gy + r0 * s.yStride, lda: s.yStride,
                                 b: v, ldb: ld, c: dS + r0 * T, ldc: T)
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
                    kernels.gemm(m: r1 - r0, n: hs, k: r1, a: dS + r0 * T, lda: T, b: k, ldb: ld, c: dq + r0 * ld, ldc: ld)
                    // Rows r0..<r1 of dk and dv gather from query rows r0..<T (lower triangle):
                    // dk[r0..<r1] (+)= dS[r0..<T, r0..<r1]^T · q[r0..<T]
                    kernels.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: dS + r0 * T + r0, lda: T,
                                 b: q + r0 * ld, ldb: ld, c: dk + r0 * ld, ldc: ld, accumulate: chain)
                    // dv[r0..<r1] (+)= P[r0..<T, r0..<r1]^T · dy[r0..<T]
                    kernels.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, a: P + r0 * T + r0, lda: T,
                                 b: gy + r0 * s.yStride, ldb: s.yStride, c: dv + r0 * ld, ldc: ld, accumulate: chain)
                    r0 = r1
                }
            }
        }
    }
}
