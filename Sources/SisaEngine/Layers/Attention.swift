// Causal multi-head self-attention over a fused qkv activation.
//
//   qkv [B, T, 3C] holds q, k, v side by side; head h uses columns h*hs..<(h+1)*hs
//   of each third (hs = C / H); s = 1 / sqrt(hs).
//   forward:  S = q k^T           [B, H, T, T] (lower triangle only)
//             P = softmax_rows(s S)  (kept for backward in `att`)
//             y = P v             [B, T, C]
//   backward: dP = dy v^T; dv = P^T dy
//             dS = s P ⊙ (dP - rowsum(P ⊙ dP))   (the scale folded in here)
//             dq = dS k; dk = dS^T q
//
// Every product is a kernel gemm, cut into row blocks so the masked upper
// triangle is mostly skipped (with T=128 and 64-row blocks, 3/4 of the work).
// One (batch, head) pair is one part of the parallel job.

enum Attention {
    static let block = 64

    static func forward(y: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                        qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int,
                        kernels: Kernels, pool: WorkerPool) {
        let hs = C / H
        let scale = 1 / Float(hs).squareRoot()
        pool.run(parts: B * H) { unit, _ in
            let b = unit / H, h = unit % H
            let q = qkv + b * T * 3 * C + h * hs, k = q + C, v = q + 2 * C
            let P = att + unit * T * T
            let out = y + b * T * C + h * hs
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + block)
                // S[r0..<r1, 0..<r1] = q[r0..<r1] · k[0..<r1]^T
                kernels.gemm(transB: true, m: r1 - r0, n: r1, k: hs,
                             a: q + r0 * 3 * C, lda: 3 * C, b: k, ldb: 3 * C, c: P + r0 * T, ldc: T)
                for i in r0..<r1 { kernels.softmaxCausal(P + i * T, valid: i + 1, width: r1, scale: scale) }
                // y[r0..<r1] = P[r0..<r1, 0..<r1] · v[0..<r1]
                kernels.gemm(m: r1 - r0, n: hs, k: r1, a: P + r0 * T, lda: T,
                             b: v, ldb: 3 * C, c: out + r0 * C, ldc: C)
                r0 = r1
            }
        }
    }

    /// Writes dqkv (overwritten) from dy. `scratch` holds threads * T * T floats.
    static func backward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                         B: Int, T: Int, C: Int, H: Int,
                         scratch: UnsafeMutablePointer<Float>, kernels: Kernels, pool: WorkerPool) {
        let hs = C / H
        let scale = 1 / Float(hs).squareRoot()
        pool.run(parts: B * H) { unit, thread in
            let b = unit / H, h = unit % H
            let q = qkv + b * T * 3 * C + h * hs, k = q + C
            let v = q + 2 * C
            let dq = dqkv + b * T * 3 * C + h * hs, dk = dq + C, dv = dq + 2 * C
            let P = att + unit * T * T
            let g = dy + b * T * C + h * hs
            let dS = scratch + thread * T * T
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + block)
                // dP[r0..<r1, 0..<r1] = dy[r0..<r1] · v[0..<r1]^T
                kernels.gemm(transB: true, m: r1 - r0, n: r1, k: hs, a: g + r0 * C, lda: C,
                             b: v, ldb: 3 * C, c: dS + r0 * T, ldc: T)
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
                kernels.gemm(m: r1 - r0, n: hs, k: r1, a: dS + r0 * T, lda: T,
                             b: k, ldb: 3 * C, c: dq + r0 * 3 * C, ldc: 3 * C)
                // Rows r0..<r1 of dk and dv gather from query rows r0..<T (lower triangle):
                // dk[r0..<r1] = dS[r0..<T, r0..<r1]^T · q[r0..<T]
                kernels.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0,
                             a: dS + r0 * T + r0, lda: T, b: q + r0 * 3 * C, ldb: 3 * C,
                             c: dk + r0 * 3 * C, ldc: 3 * C)
                // dv[r0..<r1] = P[r0..<T, r0..<r1]^T · dy[r0..<T]
                kernels.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0,
                             a: P + r0 * T + r0, lda: T, b: g + r0 * C, ldb: C,
                             c: dv + r0 * 3 * C, ldc: 3 * C)
                r0 = r1
            }
        }
    }
}
