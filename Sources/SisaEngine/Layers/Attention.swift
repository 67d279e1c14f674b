// Causal multi-head self-attention over a fused qkv activation.
//
//   qkv [B, T, 3C] holds q, k, v side by side; head h uses columns h*hs..<(h+1)*hs
//   of each third (hs = C / H).
//   forward:  S = q k^T / sqrt(hs)  [B, H, T, T] (lower triangle only)
//             P = softmax_rows(S)   (kept for backward in `att`)
//             y = P v               [B, T, C]
//   backward: dP = dy v^T; dv = P^T dy
//             dS = P ⊙ (dP - rowsum(P ⊙ dP))
//             dq = dS k / sqrt(hs); dk = dS^T q / sqrt(hs)
//
// Every product goes through sgemm, cut into row blocks so the masked upper
// triangle is mostly skipped (with T=128 and 64-row blocks, 3/4 of the work).
// One (batch, head) pair is one part of the parallel job.

enum Attention {
    static let block = 64

    static func forward(y: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                        qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int, pool: WorkerPool) {
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
                // S[r0..<r1, 0..<r1] = scale * q[r0..<r1] · k[0..<r1]^T
                BLAS.gemm(transB: true, m: r1 - r0, n: r1, k: hs, alpha: scale,
                          a: q + r0 * 3 * C, lda: 3 * C, b: k, ldb: 3 * C, c: P + r0 * T, ldc: T)
                for i in r0..<r1 { softmaxCausalRow(P + i * T, valid: i + 1, width: r1) }
                // y[r0..<r1] = P[r0..<r1, 0..<r1] · v[0..<r1]
                BLAS.gemm(m: r1 - r0, n: hs, k: r1, a: P + r0 * T, lda: T,
                          b: v, ldb: 3 * C, c: out + r0 * C, ldc: C)
                r0 = r1
            }
        }
    }

    /// In place: row[0..<valid] = softmax(row[0..<valid]); row[valid..<width] = 0.
    @inline(__always)
    static func softmaxCausalRow(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int) {
        var mx = -Float.infinity
        var i = 0
        if valid >= 8 {
            var m8 = load8(row)
            i = 8
            while i + 8 <= valid { m8 = vmax(m8, load8(row + i)); i += 8 }
            mx = hmax(m8)
        }
        while i < valid { mx = max(mx, row[i]); i += 1 }
        let mv = F8(repeating: mx)
        var acc = F8(repeating: 0)
        i = 0
        while i + 8 <= valid { let e = exp8(load8(row + i) - mv); store8(e, row + i); acc += e; i += 8 }
        var s = hsum(acc)
        while i < valid { let e = exp1(row[i] - mx); row[i] = e; s += e; i += 1 }
        let inv = 1 / s
        let iv = F8(repeating: inv)
        i = 0
        while i + 8 <= valid { store8(load8(row + i) * iv, row + i); i += 8 }
        while i < valid { row[i] *= inv; i += 1 }
        if width > valid { (row + valid).update(repeating: 0, count: width - valid) }
    }

    /// Writes dqkv (overwritten) from dy. `scratch` holds threads * T * T floats.
    static func backward(dqkv: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                         B: Int, T: Int, C: Int, H: Int,
                         scratch: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        let hs = C / H
        let scale = 1 / Float(hs).squareRoot()
        pool.run(parts: B * H) { unit, thread in
            let b = unit / H, h = unit % H
            let q = qkv + b * T * 3 * C + h * hs, k = q + C, v = q + 2 * C
            let dq = dqkv + b * T * 3 * C + h * hs, dk = dq + C, dv = dq + 2 * C
            let P = att + unit * T * T
            let g = dy + b * T * C + h * hs
            let dS = scratch + thread * T * T
            var r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + block)
                // dP[r0..<r1, 0..<r1] = dy[r0..<r1] · v[0..<r1]^T
                BLAS.gemm(transB: true, m: r1 - r0, n: r1, k: hs, a: g + r0 * C, lda: C,
                          b: v, ldb: 3 * C, c: dS + r0 * T, ldc: T)
                // dS = P ⊙ (dP - rowsum(P ⊙ dP)), zero above the diagonal
                for i in r0..<r1 {
                    let p = P + i * T, d = dS + i * T
                    let n = i + 1
                    let rowDot = dot(p, d, n)
                    let rv = F8(repeating: rowDot)
                    var j = 0
                    while j + 8 <= n { store8(load8(p + j) * (load8(d + j) - rv), d + j); j += 8 }
                    while j < n { d[j] = p[j] * (d[j] - rowDot); j += 1 }
                    if r1 > n { (d + n).update(repeating: 0, count: r1 - n) }
                }
                r0 = r1
            }
            r0 = 0
            while r0 < T {
                let r1 = min(T, r0 + block)
                // dq[r0..<r1] = scale * dS[r0..<r1, 0..<r1] · k[0..<r1]
                BLAS.gemm(m: r1 - r0, n: hs, k: r1, alpha: scale, a: dS + r0 * T, lda: T,
                          b: k, ldb: 3 * C, c: dq + r0 * 3 * C, ldc: 3 * C)
                // Rows r0..<r1 of dk and dv gather from query rows r0..<T (lower triangle):
                // dk[r0..<r1] = scale * dS[r0..<T, r0..<r1]^T · q[r0..<T]
                BLAS.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0, alpha: scale,
                          a: dS + r0 * T + r0, lda: T, b: q + r0 * 3 * C, ldb: 3 * C,
                          c: dk + r0 * 3 * C, ldc: 3 * C)
                // dv[r0..<r1] = P[r0..<T, r0..<r1]^T · dy[r0..<T]
                BLAS.gemm(transA: true, m: r1 - r0, n: hs, k: T - r0,
                          a: P + r0 * T + r0, lda: T, b: g + r0 * C, ldb: C,
                          c: dv + r0 * 3 * C, ldc: 3 * C)
                r0 = r1
            }
        }
    }
}
